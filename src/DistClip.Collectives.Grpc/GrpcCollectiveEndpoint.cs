using System.Net;
using System.Net.Sockets;
using DistClip.Collectives.Ring;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// A worker's collectives endpoint: an h2c (or, with <see cref="GrpcTransportOptions.Tls"/>, TLS) gRPC server of its own (never the control-plane port)
/// that its left neighbour streams into; see <see cref="LinkServer"/> for the two servers. Start it
/// once, report <see cref="Address"/> to the coordinator, then <see cref="JoinAsync"/> a group for
/// each generation the coordinator announces.
/// </summary>
public sealed class GrpcCollectiveEndpoint : IAsyncDisposable
{
    private readonly WebApplication? _app;
    private readonly Http2.Http2LinkListener? _listener;
    private readonly LinkAcceptor _acceptor;
    private readonly GrpcTransportOptions _options;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggerFactory;

    private GrpcCollectiveEndpoint(
        WebApplication? app, Http2.Http2LinkListener? listener, LinkAcceptor acceptor, GrpcTransportOptions options, TimeProvider time,
        ILoggerFactory loggerFactory, Uri address)
    {
        _app = app;
        _listener = listener;
        _acceptor = acceptor;
        _options = options;
        _time = time;
        _loggerFactory = loggerFactory;
        Address = address;
    }

    /// <summary>Where neighbours reach this endpoint, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri Address { get; }

    public static async Task<GrpcCollectiveEndpoint> StartAsync(
        GrpcTransportOptions options, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var time = timeProvider ?? TimeProvider.System;
        var logs = loggerFactory ?? NullLoggerFactory.Instance;
        var acceptor = new LinkAcceptor(options.Secret, options.ConnectTimeout, time, logs.CreateLogger<GrpcCollectiveEndpoint>());

        if (options.Server == LinkServer.Http2Direct)
        {
            var listener = Http2.Http2LinkListener.Start(options, acceptor, time, logs.CreateLogger<GrpcCollectiveEndpoint>());
            var local = listener.LocalEndPoint;
            string host = local.Address.Equals(IPAddress.Any) || local.Address.Equals(IPAddress.IPv6Any)
                ? "127.0.0.1"
                : local.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{local.Address}]" : local.Address.ToString();
            var listening = new Uri($"{(options.Tls is null ? "http" : "https")}://{host}:{local.Port}/");
            GrpcLog.EndpointStarted(logs.CreateLogger<GrpcCollectiveEndpoint>(), listening);
            return new GrpcCollectiveEndpoint(null, listener, acceptor, options, time, logs, listening);
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.Listen(options.ListenAddress, options.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                if (options.Tls is { } tls)
                {
                    // The direct server's options exactly (mutual TLS, the run's CA), within the same handshake deadline.
                    listen.UseHttps(new TlsHandshakeCallbackOptions
                    {
                        OnConnection = _ => ValueTask.FromResult(tls.ServerOptions()),
                        HandshakeTimeout = options.HandshakeTimeout,
                    });
                }
            });
            kestrel.Limits.Http2.InitialStreamWindowSize = options.StreamWindowBytes;
            kestrel.Limits.Http2.InitialConnectionWindowSize = options.ConnectionWindowBytes;
            kestrel.Limits.Http2.MaxFrameSize = options.MaxFrameBytes;
            // Kestrel parses a frame only once all of it is buffered: the buffer must hold the largest
            // frame. HTTP/2 flow control bounds what a peer can have in flight to the connection window.
            kestrel.Limits.MaxRequestBufferSize = (long)options.ConnectionWindowBytes + options.MaxFrameBytes;
            kestrel.Limits.MinRequestBodyDataRate = null; // links idle between steps
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.AddServerHeader = false;
        });
        // Measured on 2 cores: UnsafePreferInlineScheduling did not help; large pool blocks did, by
        // about a fifth with 16 KiB frames. Large frames only pay off with LinkClient.Http2Direct:
        // Grpc.Net.Client sends 16 KiB frames whatever the server allows.
        builder.WebHost.UseSockets(sockets => sockets.WaitForDataBeforeAllocatingBuffer = false);
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(2));
        if (options.KestrelBlockBytes != 0)
        {
            builder.Services.AddSingleton<IMemoryPoolFactory<byte>>(new LargeBlockMemoryPoolFactory(options.KestrelBlockBytes));
        }

        builder.Services.AddSingleton(acceptor);
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = FrameMarshaller.MaxFrameBytes(CollectiveLimits.MaxChunkBytes);
            grpc.MaxSendMessageSize = 64 << 10;
            grpc.EnableDetailedErrors = true;
        });

        var app = builder.Build();
        app.MapGrpcService<CollectiveLinkService>();
        await app.StartAsync(cancellationToken).ConfigureAwait(false);

        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        var address = new Uri(bound.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        GrpcLog.EndpointStarted(logs.CreateLogger<GrpcCollectiveEndpoint>(), address);
        return new GrpcCollectiveEndpoint(app, null, acceptor, options, time, logs, address);
    }

    /// <summary>
    /// Joins the group of <paramref name="membership"/>'s generation: opens the link to the right
    /// neighbour and waits for the left one's, each within the connect timeout. Older generations are
    /// refused by this endpoint from now on.
    /// </summary>
    public async Task<ICollectiveGroup> JoinAsync(
        CollectiveMembership membership, CollectiveOptions? collectiveOptions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(membership);
        membership.Validate();
        var options = collectiveOptions ?? new CollectiveOptions();
        options.Validate();
        var groupLogger = _loggerFactory.CreateLogger<RingCollectiveGroup>();
        if (membership.WorldSize == 1)
        {
            return new RingCollectiveGroup(
                new GrpcRingTransport(membership, null, null, _ => { }), membership.Generation, options, _time, groupLogger);
        }

        var leftRank = membership.LeftRank;
        var incoming = _acceptor.Register(
            membership.Generation, membership.Rank, membership.WorldSize,
            new PeerInfo(leftRank, membership.Peers[leftRank].ToString()), membership.Tokens.ExpectedLeft);
        OutgoingLink? outgoing = null;
        try
        {
            outgoing = await OutgoingLink.ConnectAsync(
                membership, _options, options.ChunkBytes, _time, _loggerFactory.CreateLogger<GrpcCollectiveEndpoint>(), cancellationToken)
                .ConfigureAwait(false);
            try
            {
                await incoming.Attached.WaitAsync(_options.ConnectTimeout, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException ex)
            {
                throw new PeerFailedException(
                    $"rank {membership.Rank} got no link from {incoming.Left} within {_options.ConnectTimeout}.", incoming.Left, ex);
            }

            var transport = new GrpcRingTransport(membership, incoming, outgoing, _acceptor.Unregister);
            return new RingCollectiveGroup(transport, membership.Generation, options, _time, groupLogger);
        }
        catch
        {
            incoming.Close(null);
            _acceptor.Unregister(incoming);
            if (outgoing is not null)
            {
                outgoing.Abort();
                await outgoing.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        // End the links still open so that Kestrel's graceful stop has nothing to wait for.
        _acceptor.CloseAll();
        if (_listener is not null)
        {
            await _listener.DisposeAsync().ConfigureAwait(false);
        }

        if (_app is not null)
        {
            await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }
}

internal static class CollectiveLimits
{
    /// <summary>The largest chunk <see cref="CollectiveOptions.Validate"/> allows.</summary>
    public const int MaxChunkBytes = 64 << 20;
}

using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using DistClip.Collectives.Grpc;
using DistClip.Collectives.Grpc.Http2;
using DistClip.Collectives.TestPeer;
using DistClip.Tls;
using Grpc.Core;

namespace DistClip.Collectives.Tests;

/// <summary>
/// Links with <see cref="GrpcTransportOptions.Tls"/> over loopback: both stacks carry a ring over
/// mutual TLS, and a peer without TLS or with a certificate of another CA gets nowhere.
/// </summary>
public sealed class TlsLinkTests : IDisposable
{
    private const string Secret = "run-secret";

    private readonly string _directory = Directory.CreateTempSubdirectory("distclip-tls-").FullName;
    private readonly RunTls _rank0;
    private readonly RunTls _rank1;
    private readonly RunTls _stranger;

    public TlsLinkTests()
    {
        RunCertificates.Generate(Path.Combine(_directory, "run"), ["worker-0", "worker-1"], []);
        RunCertificates.Generate(Path.Combine(_directory, "other"), ["stranger"], []);
        _rank0 = RunTls.LoadDirectory(Path.Combine(_directory, "run", "worker-0"));
        _rank1 = RunTls.LoadDirectory(Path.Combine(_directory, "run", "worker-1"));
        _stranger = RunTls.LoadDirectory(Path.Combine(_directory, "other", "stranger"));
    }

    public void Dispose()
    {
        _rank0.Dispose();
        _rank1.Dispose();
        _stranger.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Theory]
    [InlineData(LinkClient.Http2Direct, LinkServer.Http2Direct)]
    [InlineData(LinkClient.GrpcNetClient, LinkServer.Http2Direct)]
    [InlineData(LinkClient.Http2Direct, LinkServer.Kestrel)]
    [InlineData(LinkClient.GrpcNetClient, LinkServer.Kestrel)]
    public async Task Every_link_client_and_server_all_reduce_over_mutual_TLS(LinkClient client, LinkServer server)
    {
        var options = new GrpcTransportOptions { Secret = Secret, Client = client, Server = server };
        await using var a = await GrpcCollectiveEndpoint.StartAsync(options with { Tls = _rank0 });
        await using var b = await GrpcCollectiveEndpoint.StartAsync(options with { Tls = _rank1 });
        var peers = new[] { a.Address, b.Address };
        var groups = await Task.WhenAll(new[] { a, b }.Select((e, r) =>
            e.JoinAsync(new CollectiveMembership(r, peers, 1, PeerTokens.For(Secret, 1, r, 2)), new CollectiveOptions { ChunkBytes = 1 << 20 }, CancellationToken.None)));
        var inputs = Enumerable.Range(0, 2).Select(r => TestData.Random(300_007, r)).ToArray();
        var results = inputs.Select(x => (float[])x.Clone()).ToArray();

        await Task.WhenAll(groups.Select((g, r) => g.AllReduceSumAsync(results[r], CancellationToken.None)));

        Assert.Equal("https", a.Address.Scheme);
        TestData.AssertClose(inputs, results[0]);
        Assert.Equal(TestData.Sha256(results[0]), TestData.Sha256(results[1]));
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Theory]
    [InlineData(LinkServer.Http2Direct)]
    [InlineData(LinkServer.Kestrel)]
    public async Task A_plaintext_link_to_a_TLS_endpoint_is_refused(LinkServer server)
    {
        await using var endpoint = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret, Server = server, Tls = _rank0 });
        var plaintext = new UriBuilder(endpoint.Address) { Scheme = "http" }.Uri;

        // Depending on timing the server's hang-up is seen while the call starts or while it waits for headers.
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = await Http2LinkCall.StartAsync(plaintext, LinkMethods.ClientOpen.FullName, LinkMetadata(), CancellationToken.None);
            await call.ResponseHeadersAsync.WaitAsync(TimeSpan.FromSeconds(30));
        });

        Assert.NotEqual(StatusCode.OK, error.StatusCode);
    }

    [Theory]
    [InlineData(LinkServer.Http2Direct)]
    [InlineData(LinkServer.Kestrel)]
    public async Task A_client_certificate_from_another_CA_is_refused_before_any_HTTP2(LinkServer server)
    {
        await using var endpoint = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret, Server = server, Tls = _rank0 });

        // The stranger trusts our server (it skips the check) and presents its own CA's certificate.
        bool answered = await TryHttp2OverTlsAsync(endpoint.Address, _stranger.Certificate);
        bool control = await TryHttp2OverTlsAsync(endpoint.Address, _rank1.Certificate);

        Assert.False(answered, "the server spoke HTTP/2 to a client whose certificate is not from the run's CA");
        Assert.True(control, "the server did not answer a client with the run CA's certificate (the probe itself is broken)");
    }

    [Theory]
    [InlineData(LinkClient.Http2Direct)]
    [InlineData(LinkClient.GrpcNetClient)]
    public async Task A_link_to_a_server_with_another_CA_certificate_fails_to_connect(LinkClient client)
    {
        await using var stranger = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret, Tls = _stranger });
        await using var rank0 = await GrpcCollectiveEndpoint.StartAsync(
            new GrpcTransportOptions { Secret = Secret, Client = client, Tls = _rank0, ConnectTimeout = TimeSpan.FromSeconds(5) });

        var join = rank0.JoinAsync(new CollectiveMembership(0, [rank0.Address, stranger.Address], 1, PeerTokens.For(Secret, 1, 0, 2)), null, CancellationToken.None);
        var failed = await Assert.ThrowsAsync<PeerFailedException>(() => join);

        Assert.Equal(1, failed.Peer!.Rank);
    }

    [Fact]
    public async Task A_TLS_connection_that_never_says_hello_is_closed_at_the_handshake_deadline()
    {
        var options = new GrpcTransportOptions { Secret = Secret, Tls = _rank0, HandshakeTimeout = TimeSpan.FromSeconds(1) };
        await using var listener = Http2LinkListener.Start(options, Acceptor(options));
        using var silent = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await silent.ConnectAsync(listener.LocalEndPoint);

        Assert.True(await ClosedWithinAsync(silent, TimeSpan.FromSeconds(30)), "the silent TLS connection was not closed at its handshake deadline");
    }

    /// <summary>A connection in its TLS handshake is unauthenticated: it holds a place under the cap, and one beyond it is closed at once.</summary>
    [Fact]
    public async Task A_TLS_handshake_counts_toward_the_unauthenticated_connection_cap()
    {
        var options = new GrpcTransportOptions { Secret = Secret, Tls = _rank0, HandshakeTimeout = TimeSpan.FromMinutes(5), MaxUnauthenticatedConnections = 1 };
        await using var listener = Http2LinkListener.Start(options, Acceptor(options));
        using var first = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await first.ConnectAsync(listener.LocalEndPoint);
        using var second = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await second.ConnectAsync(listener.LocalEndPoint);

        // Far sooner than the five-minute handshake deadline: the cap, not the deadline, closed it.
        Assert.True(await ClosedWithinAsync(second, TimeSpan.FromSeconds(30)), "a connection beyond the cap was held");
        Assert.Equal(1, listener.Unauthenticated);
    }

    private static LinkAcceptor Acceptor(GrpcTransportOptions options) =>
        new(Secret, options.ConnectTimeout, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

    private static async Task<bool> ClosedWithinAsync(Socket socket, TimeSpan within)
    {
        using var deadline = new CancellationTokenSource(within);
        try
        {
            return await socket.ReceiveAsync(new byte[64], SocketFlags.None, deadline.Token) == 0;
        }
        catch (SocketException)
        {
            return true; // reset
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// Opens TLS to <paramref name="address"/> with <paramref name="certificate"/>, sends the HTTP/2
    /// preface, and says whether the server answered with a frame (its SETTINGS).
    /// </summary>
    private static async Task<bool> TryHttp2OverTlsAsync(Uri address, X509Certificate2 certificate)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(address.Host, address.Port);
        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = address.Host,
                ApplicationProtocols = [SslApplicationProtocol.Http2],
                ClientCertificateContext = SslStreamCertificateContext.Create(certificate, [], offline: true),
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            }, deadline.Token);
            await tls.WriteAsync(Http2Frames.Preface.ToArray(), deadline.Token);
            await tls.WriteAsync(Http2Frames.SettingsFrame(), deadline.Token);
            var header = new byte[Http2Frames.HeaderLength];
            await tls.ReadExactlyAsync(header, deadline.Token);
            return true;
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException or SocketException)
        {
            // Refused in the handshake (TLS 1.2) or by an alert on the first read (TLS 1.3).
            return false;
        }
    }

    private static Dictionary<string, string> LinkMetadata() => new()
    {
        ["x-distclip-secret"] = Secret,
        ["x-distclip-generation"] = "1",
        ["x-distclip-rank"] = "0",
        ["x-distclip-world-size"] = "2",
    };
}

using DistClip.Collectives.Transport;
using Grpc.Core;
using Grpc.Net.Client;
using LinkEvent = DistClip.Collectives.Grpc.V1.LinkEvent;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// <see cref="ILinkCall"/> on the stock Grpc.Net.Client: a channel (one HTTP/2 connection) per link.
/// Kept as <see cref="LinkClient.GrpcNetClient"/> for comparison and as a fallback; its HTTP/2
/// client cuts every message into 16 KiB frames, which costs several times the CPU of
/// <see cref="Http2.Http2LinkCall"/>.
/// </summary>
internal sealed class GrpcNetLinkCall : ILinkCall
{
    private readonly GrpcChannel _channel;
    private readonly AsyncDuplexStreamingCall<OutgoingFrame, LinkEvent> _call;
    private readonly CancellationTokenSource _abort = new();

    public GrpcNetLinkCall(Uri address, Metadata metadata, GrpcTransportOptions options, int chunkBytes)
    {
        _channel = CreateChannel(address, options, chunkBytes);
        _call = _channel.CreateCallInvoker().AsyncDuplexStreamingCall(
            LinkMethods.ClientOpen, null, new CallOptions(metadata, cancellationToken: _abort.Token));
        Completion = DrainAsync();
        _ = Completion.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously);
    }

    public Task<Metadata> ResponseHeadersAsync => _call.ResponseHeadersAsync;

    public Task Completion { get; }

    public ValueTask WriteAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken) =>
        new(_call.RequestStream.WriteAsync(new OutgoingFrame(header, payload), cancellationToken));

    public Task CompleteRequestAsync() => _call.RequestStream.CompleteAsync();

    public void Cancel() => _abort.Cancel();

    public void Dispose()
    {
        _abort.Cancel();
        _call.Dispose();
        _channel.Dispose();
        _abort.Dispose();
    }

    private async Task DrainAsync()
    {
        while (await _call.ResponseStream.MoveNext(_abort.Token).ConfigureAwait(false))
        {
        }
    }

    private static GrpcChannel CreateChannel(Uri address, GrpcTransportOptions options, int chunkBytes)
    {
        var handler = new SocketsHttpHandler
        {
            // One connection per link, never shared with control traffic, kept for the group's life.
            EnableMultipleHttp2Connections = false,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            ConnectTimeout = options.ConnectTimeout,
            InitialHttp2StreamWindowSize = options.StreamWindowBytes,
        };
        if (options.Tls is { } tls)
        {
            handler.SslOptions = tls.ClientOptions(address.DnsSafeHost);
        }

        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxSendMessageSize = FrameMarshaller.MaxFrameBytes(chunkBytes),
            MaxReceiveMessageSize = 64 << 10,
            MaxRetryAttempts = 0,
        });
    }
}

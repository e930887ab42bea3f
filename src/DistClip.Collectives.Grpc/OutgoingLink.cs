using System.Globalization;
using DistClip.Collectives.Transport;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using LinkEvent = DistClip.Collectives.Grpc.V1.LinkEvent;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// The link to the right neighbour: one long-lived <c>CollectiveLink.Open</c> call on a channel (one
/// HTTP/2 connection) of its own. A watcher keeps reading the response stream, so the neighbour's
/// death is seen at once even while no frame is being sent.
/// </summary>
internal sealed class OutgoingLink : IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly AsyncDuplexStreamingCall<OutgoingFrame, LinkEvent> _call;
    private readonly CancellationTokenSource _abort;
    private readonly Task _watcher;
    private readonly TimeSpan _closeTimeout;
    private PeerFailedException? _failure;
    private int _closing;

    private OutgoingLink(
        GrpcChannel channel, AsyncDuplexStreamingCall<OutgoingFrame, LinkEvent> call, CancellationTokenSource abort,
        PeerInfo right, TimeSpan closeTimeout)
    {
        _channel = channel;
        _call = call;
        _abort = abort;
        Right = right;
        _closeTimeout = closeTimeout;
        _watcher = WatchAsync();
    }

    public PeerInfo Right { get; }

    /// <summary>Set by the transport: told of a break at once.</summary>
    public Action<PeerFailedException>? Broken { get; set; }

    /// <summary>Opens the link, retrying while the neighbour's endpoint is not up yet, within the connect timeout.</summary>
    public static async Task<OutgoingLink> ConnectAsync(
        CollectiveMembership membership, GrpcTransportOptions options, int chunkBytes, TimeProvider time, ILogger logger,
        CancellationToken cancellationToken)
    {
        var address = membership.Peers[membership.RightRank];
        var right = new PeerInfo(membership.RightRank, address.ToString());
        var metadata = new Metadata
        {
            { LinkHeaders.Secret, options.Secret },
            { LinkHeaders.Generation, membership.Generation.ToString(CultureInfo.InvariantCulture) },
            { LinkHeaders.Rank, membership.Rank.ToString(CultureInfo.InvariantCulture) },
            { LinkHeaders.WorldSize, membership.WorldSize.ToString(CultureInfo.InvariantCulture) },
        };
        using var deadline = new CancellationTokenSource(options.ConnectTimeout, time);
        using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        for (int attempt = 1; ; attempt++)
        {
            var channel = CreateChannel(address, options, chunkBytes);
            var abort = new CancellationTokenSource();
            var call = new CallInvokerInvoke(channel).Open(metadata, abort.Token);
            try
            {
                var headers = await call.ResponseHeadersAsync.WaitAsync(connect.Token).ConfigureAwait(false);
                if (headers.GetValue(LinkHeaders.Accepted) is null)
                {
                    // Refused: the status comes with the end of the call.
                    await call.ResponseStream.MoveNext(connect.Token).ConfigureAwait(false);
                    throw new RpcException(call.GetStatus());
                }

                return new OutgoingLink(channel, call, abort, right, options.ConnectTimeout);
            }
            catch (Exception ex)
            {
                abort.Cancel();
                call.Dispose();
                channel.Dispose();
                abort.Dispose();
                cancellationToken.ThrowIfCancellationRequested();
                bool retry = ex is RpcException { StatusCode: StatusCode.Unavailable } && !deadline.IsCancellationRequested;
                if (!retry)
                {
                    string why = ex is RpcException rpc ? $"{rpc.StatusCode}: {rpc.Status.Detail}" : ex.Message;
                    throw new PeerFailedException(
                        $"rank {membership.Rank} could not open its link to {right} within {options.ConnectTimeout}: {why}", right, ex);
                }

                GrpcLog.ConnectRetry(logger, membership.Rank, right.Rank, address, attempt, ex.Message);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(20 * attempt, 250)), time, connect.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }
        }
    }

    public async ValueTask SendAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        if (_failure is { } failed)
        {
            throw failed;
        }

        try
        {
            await _call.RequestStream.WriteAsync(new OutgoingFrame(header, payload), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw _failure ?? Fail(new PeerFailedException($"Sending to {Right} failed: {ex.Message}", Right, ex));
        }
    }

    /// <summary>Cancels the call: the neighbour's pending operation fails on the broken stream.</summary>
    public void Abort()
    {
        Interlocked.Exchange(ref _closing, 1);
        _abort.Cancel();
    }

    /// <summary>Graceful close: ends the request stream so the neighbour can drain what was sent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _closing, 1) == 0)
        {
            try
            {
                await _call.RequestStream.CompleteAsync().WaitAsync(_closeTimeout).ConfigureAwait(false);
                await _watcher.WaitAsync(_closeTimeout).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Best effort: the neighbour is gone or slow; the call is cancelled below either way.
            }
        }

        _abort.Cancel();
        await _watcher.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _call.Dispose();
        _channel.Dispose();
        _abort.Dispose();
    }

    private async Task WatchAsync()
    {
        try
        {
            while (await _call.ResponseStream.MoveNext(_abort.Token).ConfigureAwait(false))
            {
            }

            if (Volatile.Read(ref _closing) == 0)
            {
                Fail(new PeerFailedException($"{Right} ended the link.", Right));
            }
        }
        catch (Exception ex) when (Volatile.Read(ref _closing) == 0)
        {
            string why = ex is RpcException rpc ? $"{rpc.StatusCode}: {rpc.Status.Detail}" : ex.Message;
            Fail(new PeerFailedException($"The link to {Right} broke: {why}", Right, ex));
        }
        catch (Exception)
        {
            // Closing: the end of the call is expected.
        }
    }

    private PeerFailedException Fail(PeerFailedException failure)
    {
        var first = Interlocked.CompareExchange(ref _failure, failure, null) ?? failure;
        Broken?.Invoke(first);
        return first;
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
        int maxMessage = FrameMarshaller.MaxFrameBytes(chunkBytes);
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxSendMessageSize = maxMessage,
            MaxReceiveMessageSize = 64 << 10,
            MaxRetryAttempts = 0,
        });
    }

    /// <summary>Starts the call with the hand-bound method.</summary>
    private readonly struct CallInvokerInvoke(GrpcChannel channel)
    {
        public AsyncDuplexStreamingCall<OutgoingFrame, LinkEvent> Open(Metadata metadata, CancellationToken cancellationToken) =>
            channel.CreateCallInvoker().AsyncDuplexStreamingCall(
                LinkMethods.ClientOpen, null, new CallOptions(metadata, cancellationToken: cancellationToken));
    }
}

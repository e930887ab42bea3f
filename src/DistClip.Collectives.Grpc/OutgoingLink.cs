using System.Globalization;
using DistClip.Collectives.Transport;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// The link to the right neighbour: one long-lived <c>CollectiveLink.Open</c> call on an HTTP/2
/// connection of its own (see <see cref="LinkClient"/> for the two clients). A watcher waits on the
/// call's end, so the neighbour's death is seen at once even while no frame is being sent.
/// </summary>
internal sealed class OutgoingLink : IAsyncDisposable
{
    private readonly ILinkCall _call;
    private readonly Task _watcher;
    private readonly TimeSpan _closeTimeout;
    private PeerFailedException? _failure;
    private int _closing;

    private OutgoingLink(ILinkCall call, PeerInfo right, TimeSpan closeTimeout)
    {
        _call = call;
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
            { LinkHeaders.RankToken, Convert.ToHexString(membership.Tokens.Own) },
        };
        using var deadline = new CancellationTokenSource(options.ConnectTimeout, time);
        using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        for (int attempt = 1; ; attempt++)
        {
            ILinkCall? call = null;
            try
            {
                call = await StartCallAsync(address, metadata, options, chunkBytes, connect.Token).ConfigureAwait(false);
                var headers = await call.ResponseHeadersAsync.WaitAsync(connect.Token).ConfigureAwait(false);
                if (headers.GetValue(LinkHeaders.Accepted) is null)
                {
                    // Refused: the status comes with the end of the call.
                    await call.Completion.WaitAsync(connect.Token).ConfigureAwait(false);
                    throw new RpcException(new Status(StatusCode.Internal, "The link ended without being admitted."));
                }

                return new OutgoingLink(call, right, options.ConnectTimeout);
            }
            catch (Exception ex)
            {
                call?.Cancel();
                call?.Dispose();
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
            await _call.WriteAsync(header, payload, cancellationToken).ConfigureAwait(false);
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
        _call.Cancel();
    }

    /// <summary>Graceful close: ends the request stream so the neighbour can drain what was sent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _closing, 1) == 0)
        {
            try
            {
                await _call.CompleteRequestAsync().WaitAsync(_closeTimeout).ConfigureAwait(false);
                await _watcher.WaitAsync(_closeTimeout).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Best effort: the neighbour is gone or slow; the call is cancelled below either way.
            }
        }

        _call.Cancel();
        await _watcher.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _call.Dispose();
    }

    private async Task WatchAsync()
    {
        try
        {
            await _call.Completion.ConfigureAwait(false);

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

    private static async Task<ILinkCall> StartCallAsync(
        Uri address, Metadata metadata, GrpcTransportOptions options, int chunkBytes, CancellationToken cancellationToken)
    {
        if (options.Client == LinkClient.GrpcNetClient)
        {
            return new GrpcNetLinkCall(address, metadata, options, chunkBytes);
        }

        return await Http2.Http2LinkCall.StartAsync(
            address, LinkMethods.ClientOpen.FullName, metadata.Select(m => KeyValuePair.Create(m.Key, m.Value)), cancellationToken,
            options.MaxHeaderBytes, options.Tls)
            .ConfigureAwait(false);
    }
}

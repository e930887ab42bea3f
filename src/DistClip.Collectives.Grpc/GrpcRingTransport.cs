using DistClip.Collectives.Transport;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// A rank's two gRPC links as an <see cref="IRingTransport"/>. A break on either link fails whatever
/// the rank is waiting on, with the <see cref="PeerFailedException"/> that names the lost neighbour.
/// </summary>
internal sealed class GrpcRingTransport : IRingTransport
{
    private readonly IncomingLink? _left;
    private readonly OutgoingLink? _right;
    private readonly Action<IncomingLink> _unregister;
    private readonly CancellationTokenSource _broken = new();
    private PeerFailedException? _failure;

    /// <summary>For a world of one rank both links are null: no algorithm ever uses them.</summary>
    public GrpcRingTransport(CollectiveMembership membership, IncomingLink? left, OutgoingLink? right, Action<IncomingLink> unregister)
    {
        Rank = membership.Rank;
        WorldSize = membership.WorldSize;
        Left = left?.Left ?? new PeerInfo(Rank, membership.Peers[Rank].ToString());
        Right = right?.Right ?? Left;
        _left = left;
        _right = right;
        _unregister = unregister;
        if (left is not null)
        {
            left.Broken = OnBroken;
        }

        if (right is not null)
        {
            right.Broken = OnBroken;
        }
    }

    public int Rank { get; }

    public int WorldSize { get; }

    public PeerInfo Left { get; }

    public PeerInfo Right { get; }

    public async ValueTask SendAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var link = _right ?? throw new InvalidOperationException("A world of one rank has no links.");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _broken.Token);
        try
        {
            await link.SendAsync(header, payload, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_failure is not null && !cancellationToken.IsCancellationRequested)
        {
            throw _failure;
        }
    }

    public async ValueTask<RingFrame> ReceiveAsync(CancellationToken cancellationToken)
    {
        var link = _left ?? throw new InvalidOperationException("A world of one rank has no links.");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _broken.Token);
        try
        {
            return await link.ReceiveAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_failure is not null && !cancellationToken.IsCancellationRequested)
        {
            throw _failure;
        }
    }

    public void Abort(Exception reason)
    {
        _left?.Close(reason);
        _right?.Abort();
    }

    public async ValueTask DisposeAsync()
    {
        if (_right is not null)
        {
            await _right.DisposeAsync().ConfigureAwait(false);
        }

        if (_left is not null)
        {
            _left.Close(null);
            _unregister(_left);
        }

        _broken.Dispose();
    }

    private void OnBroken(PeerFailedException failure)
    {
        if (Interlocked.CompareExchange(ref _failure, failure, null) is null)
        {
            try
            {
                _broken.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // Already disposed: nothing is waiting.
            }
        }
    }
}

using System.Threading.Channels;
using DistClip.Collectives.Transport;

namespace DistClip.Collectives.InMemory;

/// <summary>
/// One rank's links in an in-process ring: a bounded channel per link, payloads copied into pooled
/// buffers. Behaves like a real transport: FIFO, back-pressure, and a broken link on abort.
/// </summary>
internal sealed class InMemoryRingTransport : IRingTransport
{
    private readonly Channel<RingFrame> _incoming;
    private Channel<RingFrame> _outgoing = null!;
    private int _aborted;

    public InMemoryRingTransport(int rank, int worldSize, int capacity)
    {
        Rank = rank;
        WorldSize = worldSize;
        Left = new PeerInfo((rank - 1 + worldSize) % worldSize, "in-memory");
        Right = new PeerInfo((rank + 1) % worldSize, "in-memory");
        _incoming = Channel.CreateBounded<RingFrame>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = true,
        });
    }

    public int Rank { get; }

    public int WorldSize { get; }

    public PeerInfo Left { get; }

    public PeerInfo Right { get; }

    /// <summary>Links this rank's output to the right neighbour's input.</summary>
    public void ConnectTo(InMemoryRingTransport right) => _outgoing = right._incoming;

    public async ValueTask SendAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var buffer = RingFrame.Rent(payload.Length);
        payload.Span.CopyTo(buffer);
        var frame = new RingFrame(header, buffer, payload.Length);
        try
        {
            await _outgoing.Writer.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException ex)
        {
            frame.Dispose();
            throw new PeerFailedException($"The link to {Right} is closed.", Right, ex.InnerException ?? ex);
        }
        catch (OperationCanceledException)
        {
            frame.Dispose();
            throw;
        }
    }

    public async ValueTask<RingFrame> ReceiveAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _incoming.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException ex)
        {
            throw new PeerFailedException($"The link from {Left} is closed.", Left, ex.InnerException ?? ex);
        }
    }

    /// <summary>Test hook: puts a frame on this rank's incoming link as if the left neighbour sent it.</summary>
    internal ValueTask InjectAsync(RingFrame frame, CancellationToken cancellationToken) =>
        _incoming.Writer.WriteAsync(frame, cancellationToken);

    public void Abort(Exception reason)
    {
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        // Break both links: the right neighbour's reads and the left neighbour's writes now fail.
        var gone = new PeerFailedException($"{new PeerInfo(Rank, "in-memory")} aborted: {reason.Message}", new PeerInfo(Rank, "in-memory"), reason);
        _outgoing.Writer.TryComplete(gone);
        _incoming.Writer.TryComplete(gone);
        Drain();
    }

    public ValueTask DisposeAsync()
    {
        // Graceful: the right neighbour may still drain what was sent, then sees the link closed.
        _outgoing.Writer.TryComplete();
        _incoming.Writer.TryComplete(new PeerFailedException($"rank {Rank} closed its group.", new PeerInfo(Rank, "in-memory")));
        Drain();
        return ValueTask.CompletedTask;
    }

    private void Drain()
    {
        while (_incoming.Reader.TryRead(out var frame))
        {
            frame.Dispose();
        }
    }
}

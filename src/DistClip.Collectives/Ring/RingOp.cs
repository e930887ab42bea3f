using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using DistClip.Collectives.Transport;

namespace DistClip.Collectives.Ring;

/// <summary>
/// One running operation's view of the ring: splits blocks into frames, stamps and checks headers,
/// and remembers which neighbour it is waiting on (for the timeout message).
/// </summary>
/// <remarks>
/// A block of n bytes always travels as max(1, ceil(n / chunk)) frames, so sender and receiver agree
/// on every frame's index and length from the sizes alone; empty blocks still send one empty frame,
/// which keeps every step in lockstep.
/// </remarks>
internal sealed class RingOp
{
    private readonly IRingTransport _transport;
    private readonly int _chunkBytes;
    private readonly CancellationTokenSource _cancellation;
    private int _sendIndex;
    private int _receiveIndex;
    private int _pendingReceives;

    public RingOp(
        IRingTransport transport, long generation, long sequence, CollectiveOperation operation, int chunkBytes,
        CancellationTokenSource cancellation)
    {
        _transport = transport;
        Generation = generation;
        Sequence = sequence;
        Operation = operation;
        _chunkBytes = chunkBytes;
        _cancellation = cancellation;
        CancellationToken = cancellation.Token;
    }

    public long Generation { get; }

    public long Sequence { get; }

    public CollectiveOperation Operation { get; }

    public CancellationToken CancellationToken { get; }

    public int Rank => _transport.Rank;

    public int WorldSize => _transport.WorldSize;

    public long BytesSent { get; private set; }

    /// <summary>The neighbour the operation is blocked on: the left one if a receive is (or was, when the operation failed) pending.</summary>
    public PeerInfo BlockedOn => Volatile.Read(ref _pendingReceives) > 0 ? _transport.Left : _transport.Right;

    /// <summary>Cancels the rest of the operation (one half of a step failed).</summary>
    public void AbortStep() => _cancellation.Cancel();

    /// <summary>
    /// Sends <paramref name="block"/> to the right neighbour, frame by frame. With <paramref name="landed"/>,
    /// each frame waits for one release: the frame of the same range having arrived (pipelining).
    /// </summary>
    public async Task SendAsync(ReadOnlyMemory<byte> block, SemaphoreSlim? landed = null)
    {
        int offset = 0;
        do
        {
            int length = Math.Min(_chunkBytes, block.Length - offset);
            if (landed is not null)
            {
                await landed.WaitAsync(CancellationToken).ConfigureAwait(false);
            }

            await SendFrameAsync(block.Slice(offset, length)).ConfigureAwait(false);
            offset += length;
        }
        while (offset < block.Length);
    }

    /// <summary>
    /// Receives a block of <paramref name="destination"/>'s size and copies or adds it in, releasing
    /// <paramref name="landed"/> once per frame applied.
    /// </summary>
    public async Task ReceiveAsync(Memory<byte> destination, bool add, SemaphoreSlim? landed = null)
    {
        int offset = 0;
        do
        {
            int length = Math.Min(_chunkBytes, destination.Length - offset);
            using var frame = await ReceiveFrameAsync(length).ConfigureAwait(false);
            var target = destination.Span.Slice(offset, length);
            if (add)
            {
                FloatMath.AddInPlace(MemoryMarshal.Cast<byte, float>(target), MemoryMarshal.Cast<byte, float>(frame.Payload));
            }
            else
            {
                frame.Payload.CopyTo(target);
            }

            landed?.Release();
            offset += length;
        }
        while (offset < destination.Length);
    }

    /// <summary>
    /// Receives a block into <paramref name="destination"/> and forwards each frame to the right as soon
    /// as it has landed (a pipelined broadcast), overlapping the forward with the next receive.
    /// </summary>
    public async Task ReceiveAndForwardAsync(Memory<byte> destination)
    {
        int offset = 0;
        Task forward = Task.CompletedTask;
        do
        {
            int length = Math.Min(_chunkBytes, destination.Length - offset);
            using (var frame = await ReceiveFrameAsync(length).ConfigureAwait(false))
            {
                frame.Payload.CopyTo(destination.Span.Slice(offset, length));
            }

            await forward.ConfigureAwait(false);
            forward = SendFrameAsync(destination.Slice(offset, length)).AsTask();
            offset += length;
        }
        while (offset < destination.Length);

        await forward.ConfigureAwait(false);
    }

    /// <summary>
    /// Announces how many elements the block that follows holds, as one 4-byte frame (it fits the
    /// smallest chunk): for an operation whose receiver cannot derive the sender's size (a shift).
    /// </summary>
    public async Task SendCountAsync(int elements)
    {
        var announced = new byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(announced, elements);
        await SendFrameAsync(announced).ConfigureAwait(false);
    }

    /// <summary>
    /// Receives the left neighbour's announcement (<see cref="SendCountAsync"/>) and refuses a block of
    /// any other size than <paramref name="expectedElements"/> before any of it is applied.
    /// </summary>
    public async Task ExpectCountAsync(int expectedElements)
    {
        int announced;
        using (var frame = await ReceiveFrameAsync(sizeof(int)).ConfigureAwait(false))
        {
            announced = BinaryPrimitives.ReadInt32LittleEndian(frame.Payload);
        }

        if (announced != expectedElements)
        {
            string expected = expectedElements.ToString(CultureInfo.InvariantCulture);
            string actual = announced.ToString(CultureInfo.InvariantCulture);
            throw new CollectiveMismatchException(
                $"{Operation} #{Sequence} (generation {Generation}) on rank {Rank} expects {expected} elements from "
                + $"{_transport.Left}, which sends {actual}. Nothing was applied.",
                Operation, Sequence, _transport.Left, "size", expected, actual);
        }
    }

    private async ValueTask SendFrameAsync(ReadOnlyMemory<byte> payload)
    {
        var header = new FrameHeader(Generation, Sequence, Operation, _sendIndex++, payload.Length);
        await _transport.SendAsync(header, payload, CancellationToken).ConfigureAwait(false);
        BytesSent += payload.Length;
    }

    private async ValueTask<RingFrame> ReceiveFrameAsync(int expectedLength)
    {
        // Left raised if the receive fails, so that BlockedOn still names the neighbour waited on.
        Interlocked.Increment(ref _pendingReceives);
        var frame = await _transport.ReceiveAsync(CancellationToken).ConfigureAwait(false);
        Interlocked.Decrement(ref _pendingReceives);

        var expected = new FrameHeader(Generation, Sequence, Operation, _receiveIndex++, expectedLength);
        var mismatch = FrameCheck.Compare(expected, frame.Header);
        if (mismatch is { } m)
        {
            frame.Dispose();
            throw new CollectiveMismatchException(
                $"{Operation} #{Sequence} (generation {Generation}) on rank {Rank} rejected a frame from {_transport.Left}: "
                + $"{m.Field} was {m.Actual}, expected {m.Expected}. The frame was not applied.",
                Operation, Sequence, _transport.Left, m.Field, m.Expected, m.Actual);
        }

        if (frame.Length != expectedLength)
        {
            frame.Dispose();
            throw new CollectiveMismatchException(
                $"{Operation} #{Sequence} on rank {Rank} got a payload of {frame.Length} bytes from {_transport.Left} whose header said {expectedLength}.",
                Operation, Sequence, _transport.Left, "payload", expectedLength.ToString(), frame.Length.ToString());
        }

        return frame;
    }
}

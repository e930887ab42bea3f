namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// A connection's incoming bytes, for both direct link ends: frame headers and small frames are read
/// through one buffer; bulk DATA may bypass it (<see cref="ReceiveDirectAsync"/>) once it is empty.
/// </summary>
internal sealed class FrameInput(LinkWire wire, int capacity, string peer)
{
    private readonly byte[] _buffer = new byte[capacity];
    private int _start;
    private int _end;

    /// <summary>Bytes read from the socket and not yet consumed.</summary>
    public int Buffered => _end - _start;

    /// <summary>The next <paramref name="length"/> buffered bytes, not consumed.</summary>
    public ReadOnlySpan<byte> Peek(int length) => _buffer.AsSpan(_start, length);

    public void Skip(int length) => _start += length;

    /// <summary>Moves up to <paramref name="destination"/>.Length buffered bytes out; how many.</summary>
    public int Take(Span<byte> destination)
    {
        int n = Math.Min(destination.Length, Buffered);
        _buffer.AsSpan(_start, n).CopyTo(destination);
        _start += n;
        return n;
    }

    /// <summary>
    /// Ensures <paramref name="needed"/> buffered bytes, asking the socket for no more than
    /// <paramref name="readAhead"/> in all (so that bulk data behind them stays in the socket).
    /// </summary>
    /// <exception cref="IOException">The peer closed the connection first.</exception>
    public async ValueTask FillAsync(int needed, int readAhead, CancellationToken cancellationToken)
    {
        if (Buffered >= needed)
        {
            return;
        }

        int want = Math.Clamp(readAhead, needed, _buffer.Length);
        if (_buffer.Length - _start < want)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, Buffered);
            _end -= _start;
            _start = 0;
        }

        while (Buffered < needed)
        {
            int room = Math.Min(_buffer.Length - _end, want - Buffered);
            int n = await wire.ReceiveAsync(_buffer.AsMemory(_end, room), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"{peer} closed the connection.");
            }

            _end += n;
        }
    }

    /// <summary>
    /// Reads one whole frame of at most <paramref name="maxLength"/> payload bytes. The payload stays
    /// valid until the next read.
    /// </summary>
    public async ValueTask<(int Length, byte Type, byte Flags, int Stream, ReadOnlyMemory<byte> Payload)> ReadFrameAsync(
        int maxLength, int readAhead, CancellationToken cancellationToken)
    {
        await FillAsync(Http2Frames.HeaderLength, readAhead, cancellationToken).ConfigureAwait(false);
        var (length, type, flags, stream) = Http2Frames.ReadHeader(Peek(Http2Frames.HeaderLength));
        if (length > maxLength)
        {
            throw new Http2ConnectionException(
                Http2Frames.FrameSizeError, $"{peer} sent a frame of type {type} and {length} bytes; at most {maxLength} were allowed.");
        }

        await FillAsync(Http2Frames.HeaderLength + length, readAhead, cancellationToken).ConfigureAwait(false);
        var payload = _buffer.AsMemory(_start + Http2Frames.HeaderLength, length);
        _start += Http2Frames.HeaderLength + length;
        return (length, type, flags, stream, payload);
    }

    /// <summary>Receives straight into <paramref name="destination"/> (nothing may be buffered); at least one byte.</summary>
    public async ValueTask<int> ReceiveDirectAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (Buffered > 0)
        {
            throw new InvalidOperationException("Buffered bytes come first.");
        }

        int n = await wire.ReceiveAsync(destination, cancellationToken).ConfigureAwait(false);
        return n > 0 ? n : throw new IOException($"{peer} closed the connection in the middle of a frame.");
    }
}

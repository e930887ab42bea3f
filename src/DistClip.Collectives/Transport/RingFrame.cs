using System.Buffers;

namespace DistClip.Collectives.Transport;

/// <summary>A received frame. Its payload lives in a pooled buffer: dispose it once applied.</summary>
public sealed class RingFrame : IDisposable
{
    private byte[]? _buffer;

    /// <summary>Takes ownership of <paramref name="pooledBuffer"/> (rented from <see cref="ArrayPool{T}.Shared"/>).</summary>
    public RingFrame(FrameHeader header, byte[]? pooledBuffer, int length)
    {
        Header = header;
        _buffer = pooledBuffer;
        Length = length;
    }

    public FrameHeader Header { get; }

    public int Length { get; }

    public ReadOnlySpan<byte> Payload => _buffer is null ? default : _buffer.AsSpan(0, Length);

    /// <summary>Rents a buffer for a payload of <paramref name="length"/> bytes (null for an empty one).</summary>
    public static byte[]? Rent(int length) => length == 0 ? null : ArrayPool<byte>.Shared.Rent(length);

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

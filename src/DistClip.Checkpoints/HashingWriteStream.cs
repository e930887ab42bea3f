using System.Security.Cryptography;

namespace DistClip.Checkpoints;

/// <summary>
/// A write-only pass-through that hashes and counts what goes by, so a payload file's sha256 and
/// size for MANIFEST come from the bytes written, without reading the file back.
/// </summary>
/// <remarks>
/// Disposing it (a BinaryWriter without leaveOpen does) leaves the inner stream open: the committer
/// still has to fsync and close the file.
/// </remarks>
internal sealed class HashingWriteStream(Stream inner) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _written;
    private bool _disposed;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_disposed;
    public override long Length => _written;

    public override long Position
    {
        get => _written;
        set => throw new NotSupportedException("Checkpoint files are written front to back.");
    }

    /// <summary>Lower-case hex sha256 of everything written so far.</summary>
    public string Sha256Hex() => Convert.ToHexStringLower(_hash.GetCurrentHash());

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        inner.Write(buffer);
        _hash.AppendData(buffer);
        _written += buffer.Length;
    }

    public override void WriteByte(byte value) => Write([value]);

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        base.Dispose(disposing);
    }
}

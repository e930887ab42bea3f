using System.Security.Cryptography;

namespace DistClip.Checkpoints;

/// <summary>
/// A payload file as its loader reads it, hashed on the way: the bytes loaded are the bytes checked,
/// so a file changed (or swapped) after <see cref="CheckpointVerifier"/> passed it cannot slip in.
/// The read that would deliver the file's last byte first checks size and sha256 against MANIFEST and
/// throws <see cref="CorruptCheckpointException"/> instead when they differ; a file that ends early
/// throws too. Bytes past MANIFEST's size are never delivered.
/// </summary>
/// <remarks>
/// A loader that stops before the last byte has read only unvouched bytes; the checkpoint's own
/// loaders read their files to the end (the formats are self-delimiting and end at the file's end).
/// </remarks>
internal sealed class VerifyingReadStream(FileStream file, string directory, ManifestEntry entry) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _delivered;
    private bool _checked;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    /// <summary>MANIFEST's size: all a reader will get.</summary>
    public override long Length => entry.Size;

    public override long Position
    {
        get => _delivered;
        set => throw new NotSupportedException("a checkpoint file is verified as it is read, front to back");
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        long left = entry.Size - _delivered;
        if (left == 0)
        {
            Check();
            return 0;
        }
        if (buffer.Length == 0)
        {
            return 0;
        }
        Span<byte> into = buffer.Length > left ? buffer[..(int)left] : buffer;
        int read = file.Read(into);
        return Delivered(into[..read]);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        long left = entry.Size - _delivered;
        if (left == 0)
        {
            Check();
            return 0;
        }
        if (buffer.Length == 0)
        {
            return 0;
        }
        Memory<byte> into = buffer.Length > left ? buffer[..(int)left] : buffer;
        int read = await file.ReadAsync(into, cancellationToken).ConfigureAwait(false);
        return Delivered(into.Span[..read]);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Delivered(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0)
        {
            throw new CorruptCheckpointException(directory, entry.Name,
                $"changed since it was verified: it ends after {_delivered} bytes, MANIFEST says {entry.Size}");
        }
        _hash.AppendData(bytes);
        _delivered += bytes.Length;
        if (_delivered == entry.Size)
        {
            Check();
        }
        return bytes.Length;
    }

    /// <summary>Once every byte has been hashed: before the last of them reaches the reader.</summary>
    private void Check()
    {
        if (_checked)
        {
            return;
        }
        string actual = Convert.ToHexStringLower(_hash.GetHashAndReset());
        if (actual != entry.Sha256)
        {
            throw new CorruptCheckpointException(directory, entry.Name,
                $"changed since it was verified: sha256 {actual} does not match MANIFEST's {entry.Sha256}");
        }
        _checked = true;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a checkpoint file is verified as it is read, front to back");

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            file.Dispose();
            _hash.Dispose();
        }
        base.Dispose(disposing);
    }
}

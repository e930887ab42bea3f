using System.Buffers.Binary;
using System.Security.Cryptography;

namespace DistClip.Training;

/// <summary>
/// A replica's whole training state as one block of bytes, for a survivor of a lost generation to
/// hand to the next one over the data plane (docs/architecture.md, "Recovery from live peers"): the
/// step, the state document a checkpoint's <c>state.json</c> holds, the model and the optimizer, in
/// the checkpoint's own encodings, sealed by a SHA-256 so that a receiver takes nothing damaged.
/// </summary>
/// <remarks>
/// Layout: "DCRS", version (int32), step (int64), the three section lengths (int64 each), the
/// sections, then SHA-256 over everything before it. Little-endian.
/// </remarks>
public sealed class ReplicaState
{
    private const int HeaderBytes = 4 + 4 + 8 + 3 * 8;
    private const int Version = 1;
    private static ReadOnlySpan<byte> Magic => "DCRS"u8;

    private ReplicaState(byte[] bytes, long step)
    {
        Bytes = bytes;
        Step = step;
    }

    /// <summary>The encoded state (what travels).</summary>
    public byte[] Bytes { get; }

    /// <summary>The steps the replica had completed.</summary>
    public long Step { get; }

    /// <summary>Seals a state.</summary>
    public static ReplicaState Pack(long step, ReadOnlySpan<byte> state, ReadOnlySpan<byte> model, ReadOnlySpan<byte> optimizer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        long length = HeaderBytes + (long)state.Length + model.Length + optimizer.Length + SHA256.HashSizeInBytes;
        if (length > Array.MaxLength)
        {
            throw new NotSupportedException($"a replica state of {length} bytes does not fit one array ({Array.MaxLength} at most)");
        }

        var bytes = new byte[length];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], Version);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], step);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], state.Length);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], model.Length);
        BinaryPrimitives.WriteInt64LittleEndian(span[32..], optimizer.Length);
        int at = HeaderBytes;
        state.CopyTo(span[at..]);
        at += state.Length;
        model.CopyTo(span[at..]);
        at += model.Length;
        optimizer.CopyTo(span[at..]);
        at += optimizer.Length;
        SHA256.HashData(span[..at], span[at..]);
        return new ReplicaState(bytes, step);
    }

    /// <summary>Checks received bytes: the layout, every length, and the seal.</summary>
    /// <exception cref="InvalidDataException">Not a replica state, or damaged (named).</exception>
    public static ReplicaState Open(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length < HeaderBytes + SHA256.HashSizeInBytes || !bytes.AsSpan(0, 4).SequenceEqual(Magic))
        {
            throw new InvalidDataException($"not a replica state ({bytes.Length} bytes)");
        }

        int version = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4));
        if (version != Version)
        {
            throw new InvalidDataException($"a replica state of version {version}; this worker reads version {Version}");
        }

        long step = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(8));
        long total = HeaderBytes + (long)SHA256.HashSizeInBytes;
        for (int i = 0; i < 3; i++)
        {
            long section = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16 + 8 * i));
            if (section < 0 || section > bytes.Length)
            {
                throw new InvalidDataException($"a replica state whose section {i} claims {section} bytes of {bytes.Length}");
            }

            total += section;
        }

        if (step < 0 || total != bytes.Length)
        {
            throw new InvalidDataException($"a replica state whose header (step {step}) does not match its {bytes.Length} bytes");
        }

        int sealedLength = bytes.Length - SHA256.HashSizeInBytes;
        if (!SHA256.HashData(bytes.AsSpan(0, sealedLength)).AsSpan().SequenceEqual(bytes.AsSpan(sealedLength)))
        {
            throw new InvalidDataException("a replica state whose SHA-256 does not match its bytes (damaged in transit)");
        }

        return new ReplicaState(bytes, step);
    }

    /// <summary>The step and the three sections.</summary>
    public (long Step, ReadOnlyMemory<byte> State, ReadOnlyMemory<byte> Model, ReadOnlyMemory<byte> Optimizer) Unpack()
    {
        var memory = Bytes.AsMemory();
        int state = checked((int)BinaryPrimitives.ReadInt64LittleEndian(Bytes.AsSpan(16)));
        int model = checked((int)BinaryPrimitives.ReadInt64LittleEndian(Bytes.AsSpan(24)));
        int optimizer = checked((int)BinaryPrimitives.ReadInt64LittleEndian(Bytes.AsSpan(32)));
        int at = HeaderBytes;
        return (Step, memory.Slice(at, state), memory.Slice(at + state, model), memory.Slice(at + state + model, optimizer));
    }
}

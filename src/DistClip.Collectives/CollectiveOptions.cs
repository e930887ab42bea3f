namespace DistClip.Collectives;

/// <summary>How a group runs its operations, whatever the transport.</summary>
public sealed record CollectiveOptions
{
    /// <summary>1 MiB: the chunk size measured best for gRPC on loopback.</summary>
    public const int DefaultChunkBytes = 1 << 20;

    /// <summary>
    /// Every operation completes or fails within this time, whatever its size: a silent peer can
    /// never hang a rank. Set it above the largest expected skew between ranks entering an
    /// operation plus the transfer time of the largest buffer.
    /// </summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Largest payload of one frame, in bytes; a multiple of 4 (whole floats).</summary>
    public int ChunkBytes { get; init; } = DefaultChunkBytes;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (OperationTimeout <= TimeSpan.Zero || OperationTimeout == Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentException(
                $"{nameof(OperationTimeout)} must be positive and finite, not {OperationTimeout}.", nameof(OperationTimeout));
        }

        if (ChunkBytes < 4 || ChunkBytes % 4 != 0 || ChunkBytes > 64 << 20)
        {
            throw new ArgumentException(
                $"{nameof(ChunkBytes)} must be a multiple of 4 between 4 and 64 MiB, not {ChunkBytes}.", nameof(ChunkBytes));
        }
    }
}

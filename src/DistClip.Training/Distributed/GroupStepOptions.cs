namespace DistClip.Training.Distributed;

/// <summary>How <see cref="GroupStepCollectives"/> moves gradients.</summary>
public sealed record GroupStepOptions
{
    /// <summary>16 MiB: see <see cref="BucketBytes"/>.</summary>
    public const int DefaultBucketBytes = 16 << 20;

    /// <summary>
    /// Target size of one gradient all-reduce, in bytes; buckets hold whole parameters, so one larger
    /// than this travels alone. Smaller buckets let packing (and, off the CPU, the host copy) overlap
    /// the previous bucket's transfer; larger ones pay the ring's 2(N − 1) step latencies fewer times.
    /// </summary>
    public int BucketBytes { get; init; } = DefaultBucketBytes;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (BucketBytes < sizeof(float) || BucketBytes > 1 << 30)
        {
            throw new ArgumentException($"{nameof(BucketBytes)} must be between 4 bytes and 1 GiB, not {BucketBytes}.", nameof(BucketBytes));
        }
    }
}

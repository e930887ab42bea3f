namespace DistClip.Data;

/// <summary>Loader tuning.</summary>
/// <param name="DecodeThreads">Workers decoding the samples of one batch in parallel (output order never depends on it).</param>
/// <param name="Prefetch">Finished batches kept ready ahead of the trainer (the bounded queue's capacity).</param>
public sealed record DataLoaderOptions(int DecodeThreads = 1, int Prefetch = 4)
{
    /// <summary>Pixels kept ready ahead of the trainer, at most: 256 MiB of float32.</summary>
    public const long PrefetchBytes = 256L << 20;

    /// <summary>
    /// <see cref="Prefetch"/>, lowered so that the batches waiting hold at most <see cref="PrefetchBytes"/> of
    /// pixels (never below one): at CLIP-scale local batches four batches ahead would be gigabytes.
    /// </summary>
    public int PrefetchFor(int batchSize, ImageSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        long bytesPerBatch = Math.Max(1L, (long)batchSize * spec.PixelCount * sizeof(float));
        return (int)Math.Clamp(PrefetchBytes / bytesPerBatch, 1, Prefetch);
    }

    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(DecodeThreads, 1, nameof(DecodeThreads));
        ArgumentOutOfRangeException.ThrowIfLessThan(Prefetch, 1, nameof(Prefetch));
    }
}

namespace DistClip.Data;

/// <summary>Loader tuning.</summary>
/// <param name="DecodeThreads">Workers decoding the samples of one batch in parallel (output order never depends on it).</param>
/// <param name="Prefetch">Finished batches kept ready ahead of the trainer (the bounded queue's capacity).</param>
public sealed record DataLoaderOptions(int DecodeThreads = 1, int Prefetch = 4)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(DecodeThreads, 1, nameof(DecodeThreads));
        ArgumentOutOfRangeException.ThrowIfLessThan(Prefetch, 1, nameof(Prefetch));
    }
}

namespace DistClip.Data;

/// <summary>
/// Decides which samples make up every global batch, and which slice of it each rank loads.
/// Epoch e's order is a Fisher–Yates shuffle driven by SplitMix64 seeded from (seed, e): a pure
/// function of its inputs, the same in every process and on every machine.
/// </summary>
/// <remarks>
/// A global batch that <c>worldSize</c> does not divide is refused rather than given
/// uneven local batches: the contrastive loss gathers equal b×D slices from every rank, and unequal
/// shards would also make the N-worker run differ from the one-worker run on the same global batch.
/// The last partial global batch of each epoch is dropped, so every batch is full.
/// </remarks>
public sealed class GlobalBatchSampler
{
    private volatile EpochOrder? _cached;

    /// <exception cref="ArgumentException">globalBatch is not divisible by worldSize, or exceeds datasetCount.</exception>
    public GlobalBatchSampler(int datasetCount, int globalBatch, int worldSize, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(datasetCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(globalBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        if (globalBatch % worldSize != 0)
        {
            throw new ArgumentException(
                $"globalBatch {globalBatch} is not divisible by worldSize {worldSize}: every rank must load the same local batch size (e.g. use globalBatch {globalBatch / worldSize * worldSize} or {(globalBatch / worldSize + 1) * worldSize}).",
                nameof(globalBatch));
        }

        if (globalBatch > datasetCount)
        {
            throw new ArgumentException(
                $"globalBatch {globalBatch} is larger than the dataset's {datasetCount} samples.", nameof(globalBatch));
        }

        DatasetCount = datasetCount;
        GlobalBatchSize = globalBatch;
        WorldSize = worldSize;
        Seed = seed;
        LocalBatchSize = globalBatch / worldSize;
        BatchesPerEpoch = datasetCount / globalBatch;
    }

    public int DatasetCount { get; }

    public int GlobalBatchSize { get; }

    public int WorldSize { get; }

    public int Seed { get; }

    /// <summary>b = globalBatch / worldSize.</summary>
    public int LocalBatchSize { get; }

    /// <summary>datasetCount / globalBatch; the remainder of each epoch is dropped.</summary>
    public long BatchesPerEpoch { get; }

    /// <summary>The cursor after <paramref name="cursor"/>, rolling over to batch 0 of the next epoch.</summary>
    public SamplerCursor Next(SamplerCursor cursor)
    {
        Check(cursor.Epoch, cursor.BatchInEpoch);
        return cursor.BatchInEpoch + 1 < BatchesPerEpoch
            ? cursor with { BatchInEpoch = cursor.BatchInEpoch + 1 }
            : new SamplerCursor(checked(cursor.Epoch + 1), 0);
    }

    /// <summary>Dataset indices of the whole global batch, in rank order.</summary>
    public int[] GlobalBatch(int epoch, long batchInEpoch)
    {
        Check(epoch, batchInEpoch);
        return Order(epoch).AsSpan((int)(batchInEpoch * GlobalBatchSize), GlobalBatchSize).ToArray();
    }

    /// <summary>Rank <paramref name="rank"/>'s contiguous slice [rank·b, (rank+1)·b) of the global batch.</summary>
    public int[] LocalBatch(int epoch, long batchInEpoch, int rank)
    {
        Check(epoch, batchInEpoch);
        if ((uint)rank >= (uint)WorldSize)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {WorldSize}).");
        }

        int start = (int)(batchInEpoch * GlobalBatchSize) + (rank * LocalBatchSize);
        return Order(epoch).AsSpan(start, LocalBatchSize).ToArray();
    }

    public int[] GlobalBatch(SamplerCursor cursor) => GlobalBatch(cursor.Epoch, cursor.BatchInEpoch);

    public int[] LocalBatch(SamplerCursor cursor, int rank) => LocalBatch(cursor.Epoch, cursor.BatchInEpoch, rank);

    /// <summary>The full permutation of epoch <paramref name="epoch"/> (a copy).</summary>
    public int[] Permutation(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        return (int[])Order(epoch).Clone();
    }

    private int[] Order(int epoch)
    {
        // Readers on several threads may race to build the same epoch; both results are identical.
        EpochOrder? cached = _cached;
        if (cached is not null && cached.Epoch == epoch)
        {
            return cached.Permutation;
        }

        var permutation = new int[DatasetCount];
        for (int i = 0; i < permutation.Length; i++)
        {
            permutation[i] = i;
        }

        var random = new SplitMix64(SplitMix64.Hash(Seed, epoch));
        for (int i = permutation.Length - 1; i > 0; i--)
        {
            int j = random.NextBelow(i + 1);
            (permutation[i], permutation[j]) = (permutation[j], permutation[i]);
        }

        _cached = new EpochOrder(epoch, permutation);
        return permutation;
    }

    private void Check(int epoch, long batchInEpoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        if (batchInEpoch < 0 || batchInEpoch >= BatchesPerEpoch)
        {
            throw new ArgumentOutOfRangeException(nameof(batchInEpoch), batchInEpoch, $"batchInEpoch must be in [0, {BatchesPerEpoch}).");
        }
    }

    private sealed record EpochOrder(int Epoch, int[] Permutation);
}

namespace DistClip.Collectives;

public static class CollectiveGroupExtensions
{
    /// <summary>
    /// Every rank's <paramref name="localCount"/>, in rank order: what the counted all-gather needs when
    /// local batch sizes differ (a dropped sample, a short last batch).
    /// </summary>
    public static async Task<int[]> AllGatherCountsAsync(
        this ICollectiveGroup group, int localCount, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(group);
        // Counts travel as floats, exact up to 2^24.
        ArgumentOutOfRangeException.ThrowIfNegative(localCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(localCount, 1 << 24);
        var output = new float[group.WorldSize];
        await group.AllGatherAsync(new float[] { localCount }, output, cancellationToken).ConfigureAwait(false);
        return Array.ConvertAll(output, c => (int)c);
    }
}

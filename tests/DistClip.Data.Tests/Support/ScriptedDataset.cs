namespace DistClip.Data.Tests;

/// <summary>
/// An in-memory dataset whose pixels encode the sample index, with switches for skipping, throwing
/// and blocking at chosen indices.
/// </summary>
internal sealed class ScriptedDataset(int count) : IImageTextDataset
{
    private int _loads;

    public string Name => "scripted";

    public int Count { get; } = count;

    public IReadOnlyList<string>? ClassNames => null;

    public SkipCounters Skips { get; } = new();

    public HashSet<int> SkipAt { get; init; } = [];

    public int? ThrowAt { get; init; }

    /// <summary>When set, every load waits for it; lets a test hold the producer mid-batch without sleeping.</summary>
    public ManualResetEventSlim? Gate { get; init; }

    public int Loads => Volatile.Read(ref _loads);

    public bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out string caption, out int label)
    {
        Interlocked.Increment(ref _loads);
        Gate?.Wait();
        if (index == ThrowAt)
        {
            throw new InvalidOperationException($"broken sample {index}");
        }

        caption = string.Empty;
        label = -1;
        if (SkipAt.Contains(index))
        {
            Skips.Record(SkipReason.MissingImage, $"scripted:{index}");
            return false;
        }

        for (int i = 0; i < spec.PixelCount; i++)
        {
            pixels[i] = index + (i * 0.001f);
        }

        caption = $"item number {index}";
        label = index % 10;
        return true;
    }
}

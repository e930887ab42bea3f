using System.Globalization;

namespace DistClip.Data;

public enum SyntheticSplit
{
    Train,
    Test,
}

/// <summary>
/// Generated image–text pairs for benchmarks and smoke runs (open_clip's <c>--dataset-type
/// synthetic</c>): <c>synthetic:N</c> is N samples of ten classes, made on the fly at whatever size
/// and channels the model takes, so a run of any global batch needs no data on disk and no memory per
/// sample. Sample i of a split is a pure function of (split, i): its label a hash of i mod 10, its
/// image the class's stripes (one orientation per class, a random phase per sample) plus per-pixel
/// noise, its caption a prompt template naming "class k". The test split is 10,000 other samples,
/// so zero-shot accuracy on it measures whether the model learnt the stripes.
/// </summary>
public sealed class SyntheticDataset : IImageTextDataset
{
    public const string Prefix = "synthetic:";

    /// <summary>The largest N a spec may ask for: the sampler's permutation still fits in memory (4 bytes a sample).</summary>
    public const int MaxCount = 100_000_000;

    public const int TestCount = 10_000;

    private const int ClassCount = 10;

    // Stripes across the image: this many periods along the direction of the class's angle.
    private const double Periods = 3.0;
    private const float Contrast = 0.35f;
    private const float NoiseAmplitude = 0.15f;

    // Independent hash streams per split and per use, so a label says nothing of the noise.
    private const long LabelStream = 1, CaptionStream = 2, PixelStream = 3;

    private readonly long _split;

    private SyntheticDataset(int count, SyntheticSplit split)
    {
        Count = count;
        Split = split;
        _split = split == SyntheticSplit.Train ? 0 : 16;
    }

    /// <summary>"class 0" … "class 9", indexed by label.</summary>
    public static IReadOnlyList<string> Classes { get; } = Enumerable.Range(0, ClassCount).Select(k => $"class {k}").ToArray();

    public SyntheticSplit Split { get; }

    public string Name => $"synthetic-{(Split == SyntheticSplit.Train ? "train" : "test")}-{Count}";

    public int Count { get; }

    public IReadOnlyList<string>? ClassNames => Classes;

    /// <summary>Always empty: a generated sample always loads.</summary>
    public SkipCounters Skips { get; } = new();

    /// <summary>The training split of <c>synthetic:N</c>.</summary>
    /// <exception cref="DataException">The spec is not <c>synthetic:N</c> with N from 1 to <see cref="MaxCount"/>.</exception>
    public static SyntheticDataset Open(string spec) => new(CountOf(spec), SyntheticSplit.Train);

    /// <summary>The held-out split every <c>synthetic:N</c> shares: <see cref="TestCount"/> samples.</summary>
    public static SyntheticDataset OpenTest() => new(TestCount, SyntheticSplit.Test);

    public static bool IsSpec(string spec) => spec.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>N of <c>synthetic:N</c>.</summary>
    /// <exception cref="DataException">N is not a whole number from 1 to <see cref="MaxCount"/>.</exception>
    public static int CountOf(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string n = IsSpec(spec) ? spec[Prefix.Length..] : throw new DataException($"'{spec}' is not synthetic:N");
        return int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out int count) && count is >= 1 and <= MaxCount
            ? count
            : throw new DataException($"'{spec}': N must be a whole number from 1 to {MaxCount:N0}");
    }

    public int Label(int index)
    {
        CheckIndex(index);
        return (int)(SplitMix64.Hash(_split + LabelStream, index) % ClassCount);
    }

    /// <summary>Sample <paramref name="index"/>'s caption: its class name through one template, chosen by a hash of the index.</summary>
    public string Caption(int index)
    {
        IReadOnlyList<string> templates = PromptTemplates.Default;
        int template = (int)(SplitMix64.Hash(_split + CaptionStream, index) % (ulong)templates.Count);
        return PromptTemplates.Apply(templates[template], Classes[Label(index)]);
    }

    public bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out string caption, out int label)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        label = Label(index);
        caption = Caption(index);
        int size = spec.Size;
        int plane = size * size;
        if (pixels.Length < spec.PixelCount)
        {
            throw new ArgumentException($"pixels holds {pixels.Length} floats; the spec needs {spec.PixelCount}", nameof(pixels));
        }

        var random = new SplitMix64(SplitMix64.Hash(_split + PixelStream, index));
        // Stripes sin(a·x + b·y + φ), the wave vector (a, b) at the class's angle; split as
        // sin(a·x)·cos(b·y + φ) + cos(a·x)·sin(b·y + φ), so only 4·size sines per channel, not size².
        double angle = Math.PI * label / ClassCount;
        double a = 2 * Math.PI * Periods * Math.Cos(angle) / size;
        double b = 2 * Math.PI * Periods * Math.Sin(angle) / size;
        double phase = 2 * Math.PI * Unit(ref random);
        Span<float> waves = size <= 1024 ? stackalloc float[4 * size] : new float[4 * size];
        Span<float> sinX = waves[..size], cosX = waves[size..(2 * size)], sinY = waves[(2 * size)..(3 * size)], cosY = waves[(3 * size)..];
        for (int c = 0; c < spec.Channels; c++)
        {
            // A third of a turn apart per channel: RGB images are coloured, not three equal planes.
            double channelPhase = phase + (2 * Math.PI * c / 3);
            for (int i = 0; i < size; i++)
            {
                sinX[i] = (float)Math.Sin(a * i);
                cosX[i] = (float)Math.Cos(a * i);
                sinY[i] = (float)Math.Sin((b * i) + channelPhase);
                cosY[i] = (float)Math.Cos((b * i) + channelPhase);
            }

            float mean = spec.Mean[c];
            float std = spec.Std[c];
            Span<float> output = pixels.Slice(c * plane, plane);
            for (int y = 0; y < size; y++)
            {
                Span<float> row = output.Slice(y * size, size);
                for (int x = 0; x < size; x++)
                {
                    // Intensity in [0, 1] (0.5 ± contrast ± noise), normalised like a decoded image.
                    float wave = (sinX[x] * cosY[y]) + (cosX[x] * sinY[y]);
                    float noise = NoiseAmplitude * ((2 * (float)Unit(ref random)) - 1);
                    row[x] = (0.5f + (Contrast * wave) + noise - mean) / std;
                }
            }
        }

        return true;
    }

    /// <summary>Uniform in [0, 1) from the top 24 bits: exactly representable as a float.</summary>
    private static double Unit(ref SplitMix64 random) => (random.Next() >> 40) / (double)(1 << 24);

    private void CheckIndex(int index)
    {
        if ((uint)index >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {Count} samples.");
        }
    }
}

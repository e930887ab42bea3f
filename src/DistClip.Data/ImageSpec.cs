namespace DistClip.Data;

/// <summary>
/// How images are preprocessed: resize the shorter side to <see cref="Size"/> (bilinear, with
/// PIL-style antialiasing when shrinking), centre-crop Size×Size, convert to grayscale
/// (<see cref="Channels"/> = 1, ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B) or RGB (3), scale to
/// [0,1], then normalise (x - mean) / std per channel. Output layout is CHW float32.
/// </summary>
public sealed record ImageSpec(int Channels, int Size, float[] Mean, float[] Std)
{
    // The whole spec is checked when constructed; `with` copies skip constructors, so the
    // resampler calls Validate() again before use.
    public float[] Std { get; init; } = Check(Channels, Size, Mean, Std);

    /// <summary>Floats per sample: Channels × Size × Size.</summary>
    public int PixelCount => Channels * Size * Size;

    /// <summary>Fashion-MNIST at its native 28×28 grayscale, normalised with the training-set statistics.</summary>
    public static ImageSpec FashionMnist { get; } = new(1, 28, [0.2860f], [0.3530f]);

    /// <summary>Throws when the spec is inconsistent (e.g. after a <c>with</c> that changed Channels only).</summary>
    public void Validate() => Check(Channels, Size, Mean, Std);

    // Records compare arrays by reference; two specs with the same numbers are the same spec.
    public bool Equals(ImageSpec? other) =>
        other is not null && Channels == other.Channels && Size == other.Size
        && Mean.AsSpan().SequenceEqual(other.Mean) && Std.AsSpan().SequenceEqual(other.Std);

    public override int GetHashCode() => HashCode.Combine(Channels, Size, Mean.Length, Std.Length);

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"Channels = {Channels}, Size = {Size}, Mean = [{string.Join(", ", Mean)}], Std = [{string.Join(", ", Std)}]");
        return true;
    }

    private static float[] Check(int channels, int size, float[] mean, float[] std)
    {
        if (channels is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(Channels), channels, "Channels must be 1 (grayscale) or 3 (RGB).");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1, nameof(Size));
        ArgumentNullException.ThrowIfNull(mean, nameof(Mean));
        ArgumentNullException.ThrowIfNull(std, nameof(Std));
        if (mean.Length != channels || std.Length != channels)
        {
            throw new ArgumentException(
                $"Mean and Std need one value per channel ({channels}); got {mean.Length} and {std.Length}.");
        }

        foreach (float s in std)
        {
            if (!(s > 0f) || float.IsInfinity(s))
            {
                throw new ArgumentException($"Every Std value must be positive and finite; got {s}.", nameof(Std));
            }
        }

        return std;
    }
}

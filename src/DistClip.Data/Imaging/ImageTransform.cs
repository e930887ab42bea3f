namespace DistClip.Data;

/// <summary>The <see cref="ImageSpec"/> preprocessing applied to pixels already in memory.</summary>
public static class ImageTransform
{
    /// <summary>
    /// Resizes, crops and normalises an 8-bit image held row-major with <paramref name="sourceChannels"/>
    /// interleaved samples per pixel (1 = gray, 3 = RGB) into <paramref name="destination"/> (CHW, spec.PixelCount floats).
    /// </summary>
    public static void Apply(ReadOnlySpan<byte> source, int width, int height, int sourceChannels, ImageSpec spec, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (sourceChannels is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(sourceChannels), sourceChannels, "Source must have 1 or 3 channels.");
        }

        long needed = (long)width * height * sourceChannels;
        if (source.Length < needed)
        {
            throw new ArgumentException($"A {width}x{height}x{sourceChannels} image needs {needed} bytes, got {source.Length}.", nameof(source));
        }

        var resampler = new ImageResampler(width, height, spec);
        int stride = width * sourceChannels;
        for (int y = resampler.FirstRow; y < resampler.EndRow; y++)
        {
            resampler.AddRow(y, source.Slice(y * stride, stride), sourceChannels);
        }

        resampler.Write(destination);
    }
}

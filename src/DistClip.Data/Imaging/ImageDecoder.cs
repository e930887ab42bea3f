using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Pbm;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;

namespace DistClip.Data;

/// <summary>
/// Decodes an encoded image (JPEG, PNG, WebP, BMP, GIF, TGA, TIFF — what ImageSharp 2.1 reads) into
/// the <see cref="ImageSpec"/> layout. Absurd dimensions are refused from the header alone
/// (<see cref="ImageDecodeOptions"/>), so a 100000×100000 "image" of a few bytes costs nothing.
/// Thread-safe: one instance can serve every decode worker.
/// </summary>
public sealed class ImageDecoder
{
    private readonly Configuration _configuration;

    public ImageDecoder(ImageDecodeOptions? options = null)
        : this(options, null)
    {
    }

    /// <summary>Tests pass their own ImageSharp configuration (e.g. a GC allocator they can measure).</summary>
    internal ImageDecoder(ImageDecodeOptions? options, Configuration? configuration)
    {
        Options = options ?? ImageDecodeOptions.Default;
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.MaxPixels, 1, nameof(ImageDecodeOptions.MaxPixels));
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.MaxSide, 1, nameof(ImageDecodeOptions.MaxSide));
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.MaxEncodedBytes, 1, nameof(ImageDecodeOptions.MaxEncodedBytes));

        // A configuration of its own: Configuration.Clone() is shallow and shares the formats manager, so
        // the decoders set below would change every Image.Load in the process (Configuration.Default's).
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.MaxAllocationMegabytes, 1, nameof(ImageDecodeOptions.MaxAllocationMegabytes));
        _configuration = new Configuration(
            new PngConfigurationModule(), new JpegConfigurationModule(), new GifConfigurationModule(), new BmpConfigurationModule(),
            new PbmConfigurationModule(), new TgaConfigurationModule(), new TiffConfigurationModule(), new WebpConfigurationModule())
        {
            // The loader already decodes samples in parallel; nested parallelism inside one image only adds contention.
            MaxDegreeOfParallelism = 1,
            MemoryAllocator = configuration?.MemoryAllocator
                ?? MemoryAllocator.Create(new MemoryAllocatorOptions { AllocationLimitMegabytes = Options.MaxAllocationMegabytes }),
        };

        // Hostile files: a GIF of 300 frames of 4000x4000 in 4.5 KB, a PNG whose zTXt inflates to
        // 1 GiB. Training needs one frame and no metadata, so nothing else is decoded.
        var formats = _configuration.ImageFormatsManager;
        formats.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First, MaxFrames = 1, IgnoreMetadata = true });
        formats.SetDecoder(TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First, IgnoreMetadata = true });
        formats.SetDecoder(PngFormat.Instance, new PngDecoder { IgnoreMetadata = true });
        formats.SetDecoder(JpegFormat.Instance, new JpegDecoder { IgnoreMetadata = true });
        formats.SetDecoder(WebpFormat.Instance, new WebpDecoder { IgnoreMetadata = true });
    }

    public ImageDecodeOptions Options { get; }

    /// <summary>
    /// Decodes <paramref name="encoded"/> into <paramref name="pixels"/>. On failure returns false with
    /// <see cref="SkipReason.ImageTooLarge"/> or <see cref="SkipReason.UndecodableImage"/> and a short
    /// <paramref name="detail"/> for the log.
    /// </summary>
    public bool TryDecode(ReadOnlyMemory<byte> encoded, ImageSpec spec, Span<float> pixels, out SkipReason reason, out string detail)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (pixels.Length < spec.PixelCount)
        {
            throw new ArgumentException($"Need {spec.PixelCount} floats, got {pixels.Length}.", nameof(pixels));
        }

        if (encoded.Length > Options.MaxEncodedBytes)
        {
            return Fail(SkipReason.ImageTooLarge, $"{encoded.Length} encoded bytes > {Options.MaxEncodedBytes}", out reason, out detail);
        }

        if (!MemoryMarshal.TryGetArray(encoded, out ArraySegment<byte> segment))
        {
            segment = encoded.ToArray();
        }

        try
        {
            IImageInfo? info;
            using (var header = new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false))
            {
                info = Image.Identify(_configuration, header);
            }

            if (info is null)
            {
                return Fail(SkipReason.UndecodableImage, "unknown image format", out reason, out detail);
            }

            if (info.Width <= 0 || info.Height <= 0)
            {
                return Fail(SkipReason.UndecodableImage, $"{info.Width}x{info.Height} image", out reason, out detail);
            }

            if (!WithinBounds(info.Width, info.Height, out detail))
            {
                reason = SkipReason.ImageTooLarge;
                return false;
            }

            using Image<Rgb24> image = Image.Load<Rgb24>(_configuration, encoded.Span);
            if (!WithinBounds(image.Width, image.Height, out detail))
            {
                reason = SkipReason.ImageTooLarge;
                return false;
            }

            var resampler = new ImageResampler(image.Width, image.Height, spec);
            image.ProcessPixelRows(rows =>
            {
                for (int y = resampler.FirstRow; y < resampler.EndRow; y++)
                {
                    resampler.AddRow(y, MemoryMarshal.AsBytes(rows.GetRowSpan(y)), 3);
                }
            });
            resampler.Write(pixels);
            reason = default;
            detail = string.Empty;
            return true;
        }
        catch (Exception e) when (IsOutOfMemory(e) || IsOutOfMemory(e.InnerException))
        {
            // Over the allocation limit, or more than the process could get (ImageSharp wraps the
            // allocator's refusal in an InvalidImageContentException): this sample is too large for
            // this worker, and the next one may well fit.
            var cause = IsOutOfMemory(e) ? e : e.InnerException!;
            return Fail(SkipReason.ImageTooLarge, $"{cause.GetType().Name}: {cause.Message}", out reason, out detail);
        }
        catch (Exception e)
        {
            // Corrupt files reach decoders in many ways (format, index, argument, end-of-stream errors);
            // a single bad sample in a web-scale corpus must be skipped and counted, not end the run.
            return Fail(SkipReason.UndecodableImage, $"{e.GetType().Name}: {e.Message}", out reason, out detail);
        }
    }

    private static bool IsOutOfMemory(Exception? e) => e is InvalidMemoryOperationException or OutOfMemoryException;

    private bool WithinBounds(int width, int height, out string detail)
    {
        if (width > Options.MaxSide || height > Options.MaxSide
            || (long)width * height > Options.MaxPixels)
        {
            detail = $"{width}x{height} exceeds {Options.MaxPixels} pixels or {Options.MaxSide} per side";
            return false;
        }

        detail = string.Empty;
        return true;
    }

    private static bool Fail(SkipReason why, string message, out SkipReason reason, out string detail)
    {
        reason = why;
        detail = message;
        return false;
    }
}

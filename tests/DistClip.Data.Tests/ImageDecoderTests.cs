using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.PixelFormats;

namespace DistClip.Data.Tests;

public sealed class ImageDecoderTests
{
    private static readonly ImageSpec Rgb8 = new(3, 8, [0f, 0f, 0f], [1f, 1f, 1f]);

    [Fact]
    public void A_100000_by_100000_png_header_is_refused_as_too_large_without_allocating_its_pixels()
    {
        byte[] bomb = TestImages.PngWithDeclaredSize(100_000, 100_000);
        Assert.True(bomb.Length < 200, $"the bomb should be tiny on disk, was {bomb.Length} bytes");
        var decoder = new ImageDecoder();
        var pixels = new float[Rgb8.PixelCount];
        Assert.True(decoder.TryDecode(TestImages.SolidPng(4, 4, new Rgb24(1, 2, 3)), Rgb8, pixels, out _, out _)); // warm up ImageSharp

        long before = GC.GetAllocatedBytesForCurrentThread();
        bool ok = decoder.TryDecode(bomb, Rgb8, pixels, out SkipReason reason, out string detail);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.False(ok);
        Assert.Equal(SkipReason.ImageTooLarge, reason);
        Assert.Contains("100000x100000", detail);
        Assert.True(allocated < 50L * 1024 * 1024, $"refusing the header allocated {allocated} bytes");
    }

    [Fact]
    public void Only_the_first_frame_of_an_animated_gif_is_decoded()
    {
        // 12 frames of 1000x1000 in about 70 KB: decoding them all allocates 12 x 3 MB and more.
        byte[] animation = TestImages.AnimatedGif(1000, 1000, 12);
        Assert.True(animation.Length < 200_000, $"the animation should be small, was {animation.Length} bytes");
        var decoder = new ImageDecoder(null, GcConfiguration());
        var pixels = new float[Rgb8.PixelCount];
        Assert.True(decoder.TryDecode(TestImages.SolidPng(4, 4, new Rgb24(1, 2, 3)), Rgb8, pixels, out _, out _)); // warm up

        long before = GC.GetAllocatedBytesForCurrentThread();
        bool ok = decoder.TryDecode(animation, Rgb8, pixels, out _, out string detail);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(ok, detail);
        Assert.All(pixels, p => Assert.Equal(7 / 255f, p, 5)); // the first frame's colour
        Assert.True(allocated < 12L * 1024 * 1024, $"decoding allocated {allocated / (1 << 20)} MB: more than the first frame's");
    }

    /// <summary>
    /// Probe 1 of issue #15 as it was made: 300 frames of 4000x4000 in 4.5 KB, which drove a worker past
    /// 6 GiB when every frame was decoded (each one a 48 MB Rgb24 canvas). Only the first is decoded.
    /// </summary>
    [Fact]
    public void A_4_5_KB_gif_of_300_frames_of_4000x4000_decodes_only_its_first_frame()
    {
        byte[] bomb = TestImages.GifBomb(4000, 4000, 300);
        Assert.True(bomb.Length <= 4600, $"the bomb should be about 4.5 KB, was {bomb.Length} bytes");
        // The same construction, small, read by a stock GIF decoder: 300 frames of the whole screen.
        using (var small = Image.Load<Rgb24>(new Configuration(new SixLabors.ImageSharp.Formats.Gif.GifConfigurationModule()), TestImages.GifBomb(40, 30, 300)))
        {
            Assert.Equal(300, small.Frames.Count);
            Assert.Equal((40, 30), (small.Frames[299].Width, small.Frames[299].Height));
        }

        var decoder = new ImageDecoder(null, GcConfiguration());
        var pixels = new float[Rgb8.PixelCount];
        Assert.True(decoder.TryDecode(TestImages.SolidPng(4, 4, new Rgb24(1, 2, 3)), Rgb8, pixels, out _, out _)); // warm up

        long before = GC.GetAllocatedBytesForCurrentThread();
        bool ok = decoder.TryDecode(bomb, Rgb8, pixels, out _, out string detail);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(ok, detail);
        Assert.All(pixels, p => Assert.InRange(p, 0f, 1f));
        // One 4000x4000 Rgb24 frame is 48 MB; all 300 would be 14.4 GB.
        Assert.True(allocated < 128L << 20, $"decoding allocated {allocated >> 20} MiB: more than the first frame's");
    }

    [Fact]
    public void Building_a_decoder_leaves_the_process_wide_image_configuration_alone()
    {
        // Configuration.Clone() shares the formats manager: setting first-frame decoders on a clone of
        // Configuration.Default made every plain Image.Load in the process read one frame.
        _ = new ImageDecoder(null, null);
        _ = new ImageDecoder(null, GcConfiguration());
        using var stock = Image.Load<Rgb24>(TestImages.GifBomb(40, 30, 300));
        Assert.Equal(300, stock.Frames.Count);
    }

    [Fact]
    public void A_png_whose_zTXt_chunk_inflates_to_1_GiB_decodes_without_reading_it()
    {
        // Probe 2 of issue #15 as it was made: about 1 MB on disk, 1 GiB inflated (an uncaught OutOfMemoryException then).
        byte[] bomb = TestImages.PngWithTextBomb(1L << 30);
        Assert.True(bomb.Length < 2 << 20, $"the bomb should be small, was {bomb.Length} bytes");
        var decoder = new ImageDecoder(null, GcConfiguration());
        var pixels = new float[Rgb8.PixelCount];
        Assert.True(decoder.TryDecode(TestImages.SolidPng(4, 4, new Rgb24(1, 2, 3)), Rgb8, pixels, out _, out _)); // warm up

        long before = GC.GetAllocatedBytesForCurrentThread();
        bool ok = decoder.TryDecode(bomb, Rgb8, pixels, out _, out string detail);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(ok, detail);
        Assert.All(pixels, p => Assert.Equal(7 / 255f, p, 5));
        Assert.True(allocated < 50L * 1024 * 1024, $"decoding allocated {allocated / (1 << 20)} MB: the text was inflated");
    }

    [Fact]
    public void A_decode_over_the_allocation_limit_is_a_skipped_sample_not_a_crash()
    {
        // 4000x4000 is within the pixel bounds; its 64 MB frame buffer is not within a 16 MB allocation limit.
        byte[] png = TestImages.SolidPng(4000, 4000, new Rgb24(5, 5, 5));
        var decoder = new ImageDecoder(new ImageDecodeOptions { MaxAllocationMegabytes = 16 });
        var pixels = new float[Rgb8.PixelCount];

        bool ok = decoder.TryDecode(png, Rgb8, pixels, out SkipReason reason, out string detail);

        Assert.False(ok);
        Assert.True(reason == SkipReason.ImageTooLarge, $"{reason}: {detail}");
        Assert.Contains("InvalidMemoryOperationException", detail);
    }

    /// <summary>ImageSharp allocating from the GC, so that what a decode allocates shows in the measurement.</summary>
    private static Configuration GcConfiguration()
    {
        var configuration = Configuration.Default.Clone();
        configuration.MemoryAllocator = new SimpleGcMemoryAllocator();
        return configuration;
    }

    [Fact]
    public void A_configured_pixel_bound_refuses_a_real_image_before_decoding_it()
    {
        // A real 2000×2000 PNG (4 MP, 12 MB as RGB) decodes under the default bound; with a 1 MP bound it is refused.
        // ImageSharp allocates from the GC here so that a decode would show up in the measurement.
        byte[] png = TestImages.SolidPng(2000, 2000, new Rgb24(9, 9, 9));
        var configuration = Configuration.Default.Clone();
        configuration.MemoryAllocator = new SimpleGcMemoryAllocator();
        var bounded = new ImageDecoder(new ImageDecodeOptions { MaxPixels = 1_000_000 }, configuration);
        var unbounded = new ImageDecoder(null, configuration);
        var pixels = new float[Rgb8.PixelCount];
        Assert.True(bounded.TryDecode(TestImages.SolidPng(4, 4, new Rgb24(1, 2, 3)), Rgb8, pixels, out _, out _)); // warm up

        long before = GC.GetAllocatedBytesForCurrentThread();
        bool refused = !bounded.TryDecode(png, Rgb8, pixels, out SkipReason reason, out _);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        bool decodedWithDefaults = unbounded.TryDecode(png, Rgb8, pixels, out _, out string detail);

        Assert.True(refused);
        Assert.Equal(SkipReason.ImageTooLarge, reason);
        Assert.True(allocated < 4L * 1024 * 1024, $"refusing allocated {allocated} bytes");
        Assert.True(decodedWithDefaults, detail);
        Assert.All(pixels, p => Assert.Equal(9 / 255f, p, 5));
    }

    [Fact]
    public void A_side_longer_than_the_bound_is_refused_even_when_the_area_is_small()
    {
        byte[] strip = TestImages.PngWithDeclaredSize(20_000, 1);
        var pixels = new float[Rgb8.PixelCount];

        bool ok = new ImageDecoder().TryDecode(strip, Rgb8, pixels, out SkipReason reason, out _);

        Assert.False(ok);
        Assert.Equal(SkipReason.ImageTooLarge, reason);
    }

    [Fact]
    public void Random_bytes_are_undecodable_not_an_exception()
    {
        var pixels = new float[Rgb8.PixelCount];

        bool ok = new ImageDecoder().TryDecode(TestImages.Garbage(3000, seed: 7), Rgb8, pixels, out SkipReason reason, out _);

        Assert.False(ok);
        Assert.Equal(SkipReason.UndecodableImage, reason);
    }

    [Fact]
    public void A_png_cut_in_half_is_undecodable()
    {
        byte[] png = TestImages.SolidPng(64, 64, new Rgb24(1, 200, 3));
        var pixels = new float[Rgb8.PixelCount];

        bool ok = new ImageDecoder().TryDecode(png.AsMemory(0, 60), Rgb8, pixels, out SkipReason reason, out _);

        Assert.False(ok);
        Assert.Equal(SkipReason.UndecodableImage, reason);
    }

    [Fact]
    public void Jpeg_decodes_close_to_its_colour()
    {
        byte[] jpeg = TestImages.SolidJpeg(24, 16, new Rgb24(40, 120, 200));
        var pixels = new float[Rgb8.PixelCount];

        bool ok = new ImageDecoder().TryDecode(jpeg, Rgb8, pixels, out _, out string detail);

        Assert.True(ok, detail);
        Assert.Equal(40 / 255f, pixels[0], 1);
        Assert.Equal(120 / 255f, pixels[64], 1);
        Assert.Equal(200 / 255f, pixels[128], 1);
    }
}

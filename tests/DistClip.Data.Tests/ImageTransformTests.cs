using SixLabors.ImageSharp.PixelFormats;

namespace DistClip.Data.Tests;

public sealed class ImageTransformTests
{
    private static readonly ImageSpec Gray2 = new(1, 2, [0f], [1f]);

    [Fact]
    public void Constant_colour_becomes_its_normalised_value_everywhere()
    {
        // 4 wide × 2 tall, RGB (200, 100, 50) in every pixel.
        byte[] source = Enumerable.Repeat(new byte[] { 200, 100, 50 }, 8).SelectMany(p => p).ToArray();
        var spec = new ImageSpec(3, 2, [0.5f, 0.4f, 0.3f], [0.2f, 0.25f, 0.5f]);
        var pixels = new float[spec.PixelCount];

        ImageTransform.Apply(source, 4, 2, 3, spec, pixels);

        float[] expected = [((200 / 255f) - 0.5f) / 0.2f, ((100 / 255f) - 0.4f) / 0.25f, ((50 / 255f) - 0.3f) / 0.5f];
        for (int c = 0; c < 3; c++)
        {
            for (int i = 0; i < 4; i++)
            {
                Assert.Equal(expected[c], pixels[(c * 4) + i], 5);
            }
        }
    }

    [Fact]
    public void Grayscale_of_pure_red_is_bt601_luma_0_299()
    {
        byte[] red = Enumerable.Repeat(new byte[] { 255, 0, 0 }, 8).SelectMany(p => p).ToArray();
        var pixels = new float[Gray2.PixelCount];

        ImageTransform.Apply(red, 4, 2, 3, Gray2, pixels);

        Assert.All(pixels, p => Assert.Equal(0.299f, p, 5));
    }

    [Fact]
    public void Wide_image_keeps_height_and_crops_the_centre_columns()
    {
        // 4×2 gray, columns 0, 60, 120, 180. The shorter side is already 2, so the resize is the identity
        // and the centre crop keeps columns 1 and 2.
        byte[] source = [0, 60, 120, 180, 0, 60, 120, 180];
        var pixels = new float[Gray2.PixelCount];

        ImageTransform.Apply(source, 4, 2, 1, Gray2, pixels);

        float[] expected = [60 / 255f, 120 / 255f, 60 / 255f, 120 / 255f];
        Assert.Equal(expected, pixels, (a, b) => Math.Abs(a - b) < 1e-6f);
    }

    [Fact]
    public void Shrinking_averages_with_the_antialiased_triangle_filter()
    {
        // 4×2 → shorter side 1 → resized 2×1 → crop column 0. Horizontally the scale is 2, so the
        // triangle kernel spans ±2 source pixels around centre 1.0: source columns 0, 1, 2 at distances
        // 0.5, 0.5, 1.5 (÷2 → 0.25, 0.25, 0.75) weigh 0.75, 0.75, 0.25 (sum 1.75). Both rows are equal,
        // so the vertical pass changes nothing: (0·0.75 + 60·0.75 + 120·0.25) / 1.75 = 75 / 1.75.
        byte[] source = [0, 60, 120, 180, 0, 60, 120, 180];
        var spec = new ImageSpec(1, 1, [0f], [1f]);
        var pixels = new float[1];

        ImageTransform.Apply(source, 4, 2, 1, spec, pixels);

        Assert.Equal(75f / 1.75f / 255f, pixels[0], 5);
    }

    [Fact]
    public void Output_is_channel_major()
    {
        // 2×2 RGB where channel c of pixel (x, y) is 10·c + 2·y + x.
        var source = new byte[12];
        for (int y = 0; y < 2; y++)
        {
            for (int x = 0; x < 2; x++)
            {
                for (int c = 0; c < 3; c++)
                {
                    source[(((y * 2) + x) * 3) + c] = (byte)((10 * c) + (2 * y) + x);
                }
            }
        }

        var spec = new ImageSpec(3, 2, [0f, 0f, 0f], [1f / 255f, 1f / 255f, 1f / 255f]);
        var pixels = new float[spec.PixelCount];

        ImageTransform.Apply(source, 2, 2, 3, spec, pixels);

        float[] expected = [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23];
        Assert.Equal(expected, pixels, (a, b) => Math.Abs(a - b) < 1e-4f);
    }

    [Fact]
    public void Gray_source_fills_every_rgb_channel()
    {
        byte[] source = [51, 51, 51, 51];
        var spec = new ImageSpec(3, 2, [0f, 0f, 0f], [1f, 1f, 1f]);
        var pixels = new float[spec.PixelCount];

        ImageTransform.Apply(source, 2, 2, 1, spec, pixels);

        Assert.All(pixels, p => Assert.Equal(0.2f, p, 5));
    }

    [Fact]
    public void Spec_rejects_mismatched_mean_length_and_compares_by_value()
    {
        Assert.Throws<ArgumentException>(() => new ImageSpec(3, 32, [0.5f], [0.5f]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ImageSpec(2, 32, [0.5f, 0.5f], [0.5f, 0.5f]));
        Assert.Equal(new ImageSpec(1, 28, [0.2860f], [0.3530f]), ImageSpec.FashionMnist);
        Assert.Equal(784, ImageSpec.FashionMnist.PixelCount);
        Assert.Throws<ArgumentException>(() => (ImageSpec.FashionMnist with { Channels = 3 }).Validate());
    }

    [Fact]
    public void Decoded_png_goes_through_the_same_transform()
    {
        byte[] png = TestImages.SolidPng(40, 30, new Rgb24(255, 0, 0));
        var spec = new ImageSpec(1, 8, [0.1f], [0.5f]);
        var pixels = new float[spec.PixelCount];

        bool ok = new ImageDecoder().TryDecode(png, spec, pixels, out _, out string detail);

        Assert.True(ok, detail);
        Assert.All(pixels, p => Assert.Equal((0.299f - 0.1f) / 0.5f, p, 4));
    }
}

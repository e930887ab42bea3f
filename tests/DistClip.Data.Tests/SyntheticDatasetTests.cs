namespace DistClip.Data.Tests;

public sealed class SyntheticDatasetTests
{
    private static readonly ImageSpec Rgb224 = new(3, 224, [0.48145466f, 0.4578275f, 0.40821073f], [0.26862954f, 0.26130258f, 0.27577711f]);

    [Fact]
    public void A_sample_is_the_same_from_any_instance_and_any_thread()
    {
        var one = SyntheticDataset.Open("synthetic:131072");
        var other = SyntheticDataset.Open("synthetic:131072");
        int[] indices = [0, 1, 77, 65_535, 131_071];

        var serial = indices.Select(i => Load(one, i, ImageSpec.FashionMnist)).ToArray();
        var parallel = new (float[] Pixels, string Caption, int Label)[indices.Length];
        Parallel.For(0, indices.Length, k => parallel[k] = Load(other, indices[k], ImageSpec.FashionMnist));

        for (int k = 0; k < indices.Length; k++)
        {
            Assert.Equal(serial[k].Label, parallel[k].Label);
            Assert.Equal(serial[k].Caption, parallel[k].Caption);
            Assert.Equal(serial[k].Pixels, parallel[k].Pixels);
        }

        // The sample is a function of the index only, not of N.
        Assert.Equal(serial[1].Pixels, Load(SyntheticDataset.Open("synthetic:2"), 1, ImageSpec.FashionMnist).Pixels);
        Assert.NotEqual(serial[0].Pixels, serial[1].Pixels);
    }

    [Fact]
    public void Labels_are_the_ten_classes_in_about_equal_shares_and_captions_name_them()
    {
        var data = SyntheticDataset.Open("synthetic:10000");
        int[] perClass = new int[10];
        for (int i = 0; i < data.Count; i++)
        {
            int label = data.Label(i);
            Assert.InRange(label, 0, 9);
            perClass[label]++;
        }

        Assert.All(perClass, n => Assert.InRange(n, 900, 1100));
        Assert.Equal(10, data.ClassNames!.Count);
        for (int i = 0; i < 50; i++)
        {
            var (_, caption, label) = Load(data, i, ImageSpec.FashionMnist);
            Assert.Equal(data.Label(i), label);
            Assert.Contains($"class {label}", caption);
        }

        Assert.True(Enumerable.Range(0, 50).Select(data.Caption).Distinct().Count() > 10, "captions should vary over the prompt templates");
    }

    [Theory]
    [InlineData(1, 28)]
    [InlineData(3, 224)]
    [InlineData(3, 7)]
    public void Images_fill_any_spec_with_intensities_in_0_to_1_before_normalisation(int channels, int size)
    {
        var spec = channels == 1 ? ImageSpec.FashionMnist with { Size = size } : Rgb224 with { Size = size };
        var data = SyntheticDataset.Open("synthetic:100");

        var (pixels, _, _) = Load(data, 42, spec);

        Assert.Equal(channels * size * size, pixels.Length);
        for (int c = 0; c < channels; c++)
        {
            var plane = pixels.AsSpan(c * size * size, size * size).ToArray().Select(v => (v * spec.Std[c]) + spec.Mean[c]).ToArray();
            Assert.All(plane, v => Assert.InRange(v, -1e-5f, 1 + 1e-5f));
            Assert.True(plane.Max() - plane.Min() > 0.3f, $"channel {c} is flat: stripes and noise should span a range");
        }

        if (channels == 3)
        {
            Assert.NotEqual(pixels.AsSpan(0, size * size).ToArray(), pixels.AsSpan(size * size, size * size).ToArray());
        }
    }

    [Fact]
    public void The_test_split_holds_10000_samples_other_than_the_training_ones()
    {
        var train = SyntheticDataset.Open("synthetic:10000");
        var test = SyntheticDataset.OpenTest();

        Assert.Equal(10_000, test.Count);
        Assert.Equal(SyntheticSplit.Test, test.Split);
        Assert.Equal("synthetic-test-10000", test.Name);
        Assert.Equal("synthetic-train-10000", train.Name);
        Assert.NotEqual(Load(train, 3, ImageSpec.FashionMnist).Pixels, Load(test, 3, ImageSpec.FashionMnist).Pixels);
        Assert.NotEqual(Enumerable.Range(0, 100).Select(train.Label), Enumerable.Range(0, 100).Select(test.Label));
    }

    [Theory]
    [InlineData("synthetic:1", 1)]
    [InlineData("synthetic:131072", 131_072)]
    [InlineData("synthetic:100000000", 100_000_000)]
    public void N_goes_from_1_to_100_million(string spec, int count)
    {
        var data = SyntheticDataset.Open(spec);

        Assert.Equal(count, data.Count);
        Load(data, count - 1, ImageSpec.FashionMnist);
        Assert.Throws<ArgumentOutOfRangeException>(() => Load(data, count, ImageSpec.FashionMnist));
        Assert.Throws<ArgumentOutOfRangeException>(() => Load(data, -1, ImageSpec.FashionMnist));
        Assert.Equal(0, data.Skips.Total);
    }

    [Theory]
    [InlineData("synthetic:0")]
    [InlineData("synthetic:100000001")]
    [InlineData("synthetic:-5")]
    [InlineData("synthetic:+5")]
    [InlineData("synthetic:")]
    [InlineData("synthetic:1e6")]
    [InlineData("synthetic:10,000")]
    [InlineData("synthetic: 5")]
    [InlineData("synthetic:99999999999")]
    [InlineData("synthetic:lots")]
    public void A_bad_count_is_refused_saying_what_n_may_be(string spec)
    {
        var e = Assert.Throws<DataException>(() => SyntheticDataset.Open(spec));
        Assert.Contains("from 1 to 100,000,000", e.Message);
        Assert.Contains(spec, e.Message);
    }

    private static (float[] Pixels, string Caption, int Label) Load(SyntheticDataset data, int index, ImageSpec spec)
    {
        float[] pixels = new float[spec.PixelCount];
        Assert.True(data.TryLoad(index, spec, pixels, out string caption, out int label));
        return (pixels, caption, label);
    }
}

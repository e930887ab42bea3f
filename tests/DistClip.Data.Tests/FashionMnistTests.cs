namespace DistClip.Data.Tests;

/// <summary>Reads the installed files once for the whole class (the training split is 47 MB).</summary>
public sealed class FashionMnistFixture
{
    public FashionMnistDataset Train { get; } = FashionMnistDataset.Open(FashionMnistSplit.Train, FashionMnistDataset.DefaultDirectory);

    public FashionMnistDataset Test { get; } = FashionMnistDataset.Open(FashionMnistSplit.Test, FashionMnistDataset.DefaultDirectory);
}

public sealed class FashionMnistTests(FashionMnistFixture data) : IClassFixture<FashionMnistFixture>
{
    [Fact]
    public void Splits_have_60000_and_10000_samples_in_10_classes()
    {
        Assert.Equal(60_000, data.Train.Count);
        Assert.Equal(10_000, data.Test.Count);
        Assert.Equal(10, data.Train.ClassNames!.Count);
        Assert.Equal("T-shirt/top", data.Train.ClassNames[0]);
        Assert.Equal("Ankle boot", data.Train.ClassNames[9]);
        Assert.Equal(0, data.Train.Skips.Total);
    }

    [Fact]
    public void The_count_from_the_label_header_alone_matches_the_opened_splits()
    {
        Assert.Equal(data.Train.Count, FashionMnistDataset.CountOf(FashionMnistSplit.Train));
        Assert.Equal(data.Test.Count, FashionMnistDataset.CountOf(FashionMnistSplit.Test));
        Assert.Equal(data.Train.Count, DatasetSource.CountTrain("fashion-mnist"));
        Assert.Throws<DataException>(() => FashionMnistDataset.CountOf(FashionMnistSplit.Train, Path.Combine(Path.GetTempPath(), "no-such-fashion-mnist")));
    }

    [Fact]
    public void First_test_sample_is_an_ankle_boot()
    {
        Assert.Equal(9, data.Test.Label(0));
        Assert.Contains("ankle boot", data.Test.Caption(0));
    }

    [Fact]
    public void Every_class_appears_equally_often_in_the_test_split()
    {
        int[] perClass = new int[10];
        for (int i = 0; i < data.Test.Count; i++)
        {
            perClass[data.Test.Label(i)]++;
        }

        Assert.All(perClass, n => Assert.Equal(1000, n));
    }

    [Fact]
    public void Captions_are_a_template_around_the_lower_cased_class_and_fixed_by_seed()
    {
        FashionMnistDataset again = FashionMnistDataset.Open(FashionMnistSplit.Test, FashionMnistDataset.DefaultDirectory);
        FashionMnistDataset reseeded = FashionMnistDataset.Open(FashionMnistSplit.Test, FashionMnistDataset.DefaultDirectory, captionSeed: 1);
        string[] captions = Enumerable.Range(0, 200).Select(data.Test.Caption).ToArray();

        Assert.Equal(captions, Enumerable.Range(0, 200).Select(again.Caption));
        Assert.NotEqual(captions, Enumerable.Range(0, 200).Select(reseeded.Caption));
        var templatesUsed = new HashSet<int>();
        for (int i = 0; i < captions.Length; i++)
        {
            string className = FashionMnistDataset.Classes[data.Test.Label(i)].ToLowerInvariant();
            int template = PromptTemplates.Default.ToList().FindIndex(t => PromptTemplates.Apply(t, className) == captions[i]);
            Assert.True(template >= 0, $"caption \"{captions[i]}\" is not a template around \"{className}\"");
            templatesUsed.Add(template);
        }

        // The fixed hash still spreads samples over every template.
        Assert.Equal(PromptTemplates.Default.Count, templatesUsed.Count);
    }

    [Fact]
    public void Native_size_pixels_are_normalised_directly()
    {
        var pixels = new float[ImageSpec.FashionMnist.PixelCount];

        Assert.True(data.Test.TryLoad(0, ImageSpec.FashionMnist, pixels, out string caption, out int label));

        ReadOnlySpan<byte> raw = data.Test.RawImage(0);
        for (int i = 0; i < pixels.Length; i++)
        {
            Assert.Equal(((raw[i] / 255f) - 0.2860f) / 0.3530f, pixels[i], 6);
        }

        Assert.Equal(9, label);
        Assert.Equal(data.Test.Caption(0), caption);
        Assert.Contains(pixels, p => p > 2f); // the boot itself is bright
    }

    [Fact]
    public void Other_specs_use_the_generic_resize_path()
    {
        var spec = new ImageSpec(3, 32, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]);
        var pixels = new float[spec.PixelCount];
        var direct = new float[ImageSpec.FashionMnist.PixelCount];
        var generic = new float[ImageSpec.FashionMnist.PixelCount];

        Assert.True(data.Test.TryLoad(0, spec, pixels, out _, out _));
        ImageTransform.Apply(data.Test.RawImage(0), 28, 28, 1, ImageSpec.FashionMnist, generic);
        data.Test.TryLoad(0, ImageSpec.FashionMnist, direct, out _, out _);

        Assert.Equal(-1f, pixels[0], 5);                          // black corner: (0 - 0.5) / 0.5
        Assert.Equal(pixels.AsSpan(0, 1024).ToArray(), pixels.AsSpan(2048, 1024).ToArray()); // gray copied to R, G and B
        Assert.Equal(direct, generic, (a, b) => Math.Abs(a - b) < 1e-5f); // identity resize agrees with the fast path
    }

    [Fact]
    public void Sequential_eval_batches_carry_labels_in_index_order()
    {
        var tokenizer = ClipTokenizer.CreateR50k();
        List<Batch> batches = ClipDataLoader.Sequential(data.Test, ImageSpec.FashionMnist, tokenizer, 16, batchSize: 32, limit: 70).ToList();

        Assert.Equal([32, 32, 6], batches.Select(b => b.Count));
        Assert.Equal(Enumerable.Range(0, 70), batches.SelectMany(b => b.Indices));
        Assert.Equal(Enumerable.Range(0, 70).Select(i => (int)data.Test.Label(i)), batches.SelectMany(b => b.Labels));
    }

    [Fact]
    public void Missing_directory_error_names_the_path_and_the_debian_package()
    {
        using var dir = new TempDirectory();

        DataException error = Assert.Throws<DataException>(() => FashionMnistDataset.Open(FashionMnistSplit.Train, dir.Path));

        Assert.Contains(Path.Combine(dir.Path, "train-images-idx3-ubyte.gz"), error.Message);
        Assert.Contains("install it with: apt-get install dataset-fashion-mnist", error.Message);
    }

    [Fact]
    public void Environment_variable_picks_the_directory_when_none_is_given()
    {
        using var dir = new TempDirectory();
        string? previous = Environment.GetEnvironmentVariable(FashionMnistDataset.DirectoryVariable);
        Environment.SetEnvironmentVariable(FashionMnistDataset.DirectoryVariable, dir.Path);
        try
        {
            DataException error = Assert.Throws<DataException>(() => FashionMnistDataset.Open(FashionMnistSplit.Test));

            Assert.Contains(Path.Combine(dir.Path, "t10k-images-idx3-ubyte.gz"), error.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(FashionMnistDataset.DirectoryVariable, previous);
        }
    }

    [Fact]
    public void A_file_with_the_wrong_magic_number_is_a_clear_error()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("t10k-images-idx3-ubyte"), [0, 0, 8, 1, 0, 0, 0, 0]);
        File.WriteAllBytes(dir.File("t10k-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 0]);

        DataException error = Assert.Throws<DataException>(() => FashionMnistDataset.Open(FashionMnistSplit.Test, dir.Path));

        Assert.Contains("magic number 0x00000801", error.Message);
        Assert.Contains("t10k-images-idx3-ubyte", error.Message);
    }

    [Fact]
    public void A_truncated_file_is_a_clear_error()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("t10k-images-idx3-ubyte"), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]);
        File.WriteAllBytes(dir.File("t10k-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 2, 1, 2]);

        DataException error = Assert.Throws<DataException>(() => FashionMnistDataset.Open(FashionMnistSplit.Test, dir.Path));

        Assert.Contains("truncated", error.Message);
    }
}

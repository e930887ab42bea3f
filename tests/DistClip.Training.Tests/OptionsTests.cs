using DistClip.Config;
using DistClip.Data;
using DistClip.Model;

namespace DistClip.Training.Tests;

public class OptionsTests
{
    [Theory]
    [InlineData("steps")]
    [InlineData("global_batch")]
    [InlineData("device")]
    [InlineData("dataset")]
    [InlineData("lr")]
    [InlineData("beta2")]
    public void Bad_values_are_refused_naming_the_field(string field)
    {
        var bad = field switch
        {
            "steps" => new TrainOptions { Steps = 0 },
            "global_batch" => new TrainOptions { GlobalBatch = -4 },
            "device" => new TrainOptions { Device = "tpu" },
            "dataset" => new TrainOptions { Dataset = "imagenet" },
            "lr" => new TrainOptions { Optimizer = new() { LearningRate = 0 } },
            "beta2" => new TrainOptions { Optimizer = new() { Beta2 = 1.5 } },
            _ => throw new ArgumentOutOfRangeException(nameof(field)),
        };
        var e = Assert.Throws<ConfigException>(() => bad.Validate());
        Assert.Equal(field, e.Field);
        Assert.StartsWith(field + ":", e.Message);
    }

    [Fact]
    public void A_global_batch_not_divisible_by_the_workers_is_refused_with_the_fix()
    {
        var e = Assert.Throws<ConfigException>(() => new TrainOptions { GlobalBatch = 10 }.Validate(worldSize: 4));
        Assert.Equal("global_batch", e.Field);
        Assert.Contains("multiple of 4", e.Message);
    }

    [Theory]
    [InlineData("synthetic:0")]
    [InlineData("synthetic:100000001")]
    [InlineData("synthetic:many")]
    public void A_synthetic_dataset_of_a_bad_size_is_refused_naming_the_dataset(string dataset)
    {
        var e = Assert.Throws<ConfigException>(() => new TrainOptions { Dataset = dataset }.Validate());
        Assert.Equal("dataset", e.Field);
        Assert.Contains("from 1 to 100,000,000", e.Message);
    }

    [Fact]
    public void A_synthetic_dataset_needs_nothing_installed_and_has_a_labelled_test_split()
    {
        new TrainOptions { Dataset = "synthetic:131072", GlobalBatch = 65_536 }.Validate(worldSize: 2);
        DatasetSource.EnsureAvailable("synthetic:131072");

        Assert.Equal(131_072, DatasetSource.OpenTrain("synthetic:131072").Count);
        var heldOut = DatasetSource.OpenEvaluation("synthetic:131072");
        Assert.NotNull(heldOut);
        Assert.Equal(10, heldOut.ClassNames!.Count);
        Assert.Throws<ConfigException>(() => DatasetSource.EnsureAvailable("synthetic:0"));
    }

    [Fact]
    public void The_defaults_are_valid()
    {
        new TrainOptions().Validate();
        new TrainOptions().Validate(worldSize: 2);
    }
}

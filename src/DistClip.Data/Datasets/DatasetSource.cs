using DistClip.Config;
using Microsoft.Extensions.Logging;

namespace DistClip.Data;

/// <summary>Opens the datasets a <see cref="TrainOptions.Dataset"/> string names.</summary>
public static class DatasetSource
{
    /// <summary>The training set: <c>fashion-mnist</c>, <c>wds:PATTERN</c>, <c>csv:FILE</c> or <c>synthetic:N</c>.</summary>
    public static IImageTextDataset OpenTrain(string spec, ILogger? logger = null)
    {
        if (spec == "fashion-mnist")
        {
            return FashionMnistDataset.Open(FashionMnistSplit.Train);
        }

        if (SyntheticDataset.IsSpec(spec))
        {
            return SyntheticDataset.Open(spec);
        }

        if (spec.StartsWith("wds:", StringComparison.Ordinal))
        {
            return WebDatasetTar.Open(spec["wds:".Length..], logger);
        }

        if (spec.StartsWith("csv:", StringComparison.Ordinal))
        {
            return CsvDataset.Open(spec["csv:".Length..], new CsvOptions());
        }

        throw new ArgumentException($"dataset: '{spec}' is not fashion-mnist, wds:PATTERN, csv:FILE or synthetic:N", nameof(spec));
    }

    /// <summary>
    /// Checks that the data a spec names is there, without reading it: a run refuses a missing
    /// dataset before any worker starts.
    /// </summary>
    public static void EnsureAvailable(string spec)
    {
        if (spec == "fashion-mnist")
        {
            string dir = FashionMnistDataset.ResolveDirectory();
            foreach (string name in new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" })
            {
                string path = Path.Combine(dir, name);
                if (!File.Exists(path + ".gz") && !File.Exists(path))
                {
                    throw new ConfigException("dataset", $"Fashion-MNIST is missing ({path}.gz not found); {FashionMnistDataset.InstallHint}");
                }
            }
        }
        else if (spec.StartsWith("wds:", StringComparison.Ordinal))
        {
            IReadOnlyList<string> shards;
            try
            {
                shards = ShardPattern.Expand(spec["wds:".Length..]);
            }
            catch (ArgumentException e)
            {
                throw new ConfigException("dataset", $"bad shard pattern: {e.Message}");
            }

            string? missing = shards.FirstOrDefault(s => !File.Exists(s));
            if (missing is not null)
            {
                throw new ConfigException("dataset", $"shard {missing} does not exist ({shards.Count} shards in the pattern)");
            }
        }
        else if (spec.StartsWith("csv:", StringComparison.Ordinal) && !File.Exists(spec["csv:".Length..]))
        {
            throw new ConfigException("dataset", $"{spec["csv:".Length..]} does not exist");
        }
        else if (SyntheticDataset.IsSpec(spec))
        {
            // Generated: nothing to find, only N to check.
            try
            {
                SyntheticDataset.CountOf(spec);
            }
            catch (DataException e)
            {
                throw new ConfigException("dataset", e.Message);
            }
        }
    }

    /// <summary>
    /// How many training samples the spec holds, counted before any worker starts (a global batch
    /// larger than this would fail in every worker). Fashion-MNIST's count is read from its label
    /// file's header (<see cref="FashionMnistDataset.CountOf"/>); tar shards and CSV files are indexed as the workers will index them (headers
    /// and lines, no image is decoded). Call <see cref="EnsureAvailable"/> first.
    /// </summary>
    /// <exception cref="ConfigException">The data cannot be read (named by <c>dataset</c>).</exception>
    public static int CountTrain(string spec, ILogger? logger = null)
    {
        try
        {
            if (spec == "fashion-mnist")
            {
                return FashionMnistDataset.CountOf(FashionMnistSplit.Train);
            }

            var dataset = OpenTrain(spec, logger);
            using (dataset as IDisposable)
            {
                return dataset.Count;
            }
        }
        catch (Exception e) when (e is DataException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw new ConfigException("dataset", $"cannot read {spec}: {e.Message}");
        }
    }

    /// <summary>
    /// The labelled held-out set used for zero-shot evaluation, or null when the dataset has none
    /// (tar shards and CSV carry captions, not classes). Every <c>synthetic:N</c> shares one generated
    /// test split of <see cref="SyntheticDataset.TestCount"/> samples.
    /// </summary>
    public static IImageTextDataset? OpenEvaluation(string spec) =>
        spec == "fashion-mnist" ? FashionMnistDataset.Open(FashionMnistSplit.Test)
        : SyntheticDataset.IsSpec(spec) ? SyntheticDataset.OpenTest()
        : null;

    /// <summary>Preprocessing that matches the model's input: grayscale stats for 1 channel, CLIP's RGB stats for 3.</summary>
    public static ImageSpec ImageSpecFor(int channels, int size) => channels == 1
        ? new ImageSpec(1, size, ImageSpec.FashionMnist.Mean, ImageSpec.FashionMnist.Std)
        : new ImageSpec(channels, size, [0.48145466f, 0.4578275f, 0.40821073f], [0.26862954f, 0.26130258f, 0.27577711f]);
}

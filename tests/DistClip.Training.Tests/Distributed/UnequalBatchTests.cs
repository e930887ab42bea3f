using DistClip.Config;
using DistClip.Data;
using DistClip.Training.Optimization;
using Xunit.Abstractions;
using static DistClip.Training.Tests.Distributed.ClusterHarness;

namespace DistClip.Training.Tests.Distributed;

/// <summary>A corrupt sample shrinks one rank's local batch; the step must still be the global one.</summary>
public class UnequalBatchTests(ITestOutputHelper output)
{
    private static readonly OptimizerSettings Sgd = new() { Kind = OptimizerKind.Sgd, LearningRate = 0.5, WarmupSteps = 0, GradClipNorm = 0 };

    [Fact]
    public void A_rank_that_lost_a_sample_still_trains_on_the_global_loss_over_the_remaining_samples()
    {
        const int world = 2;
        const int steps = 2;

        // Rank 1's fourth sample of the first global batch fails to load, in both runs.
        int victim = new GlobalBatchSampler(Dataset.Count, GlobalBatch, world, Seed).LocalBatch(0, 0, rank: 1)[3];
        var dataset = new DroppingDataset(Dataset, victim);
        Assert.Equal(GlobalBatch / world - 1, LocalBatches(world, 1, steps, dataset)[0].Count);
        Assert.Equal(GlobalBatch - 1, LocalBatches(1, 0, steps, dataset)[0].Count);

        var single = RunSingle(Sgd, steps, dataset);
        var ranks = RunRanks(world, Sgd, steps, dataset: dataset);

        var (name, error) = WorstRelativeError(ranks[0].FirstGradients, single.FirstGradients);
        output.WriteLine($"losses: one process {single.Losses[0]:F6}, 2 ranks {ranks[0].Losses[0]:F6} / {ranks[1].Losses[0]:F6}; worst gradient error {error:E2} ({name})");
        Assert.Equal([GlobalBatch - 1, GlobalBatch], ranks[0].Samples);
        Assert.Equal(ranks[0].Samples, ranks[1].Samples);
        Assert.True(Math.Abs(ranks[0].Losses[0] - single.Losses[0]) <= 1e-5 * Math.Abs(single.Losses[0]),
            $"loss over the 31 samples: {ranks[0].Losses[0]:F7} on 2 ranks, {single.Losses[0]:F7} in one process");
        Assert.Equal(ranks[0].Losses[0], ranks[1].Losses[0]);
        Assert.True(error <= 1e-5, $"step-1 gradient of {name} differs from one process by {error:E2}; expected <= 1e-5");
        Assert.True(BitIdentical(ranks[0].FirstFeatures, ranks[1].FirstFeatures), "the ranks' global features differ");
    }

    [Fact]
    public void A_rank_whose_whole_local_batch_was_skipped_still_takes_part_in_the_step()
    {
        const int world = 2;
        int[] victims = new GlobalBatchSampler(Dataset.Count, GlobalBatch, world, Seed).LocalBatch(0, 0, rank: 1);
        var dataset = new DroppingDataset(Dataset, victims);
        Assert.Equal(0, LocalBatches(world, 1, 1, dataset)[0].Count);

        var single = RunSingle(Sgd, 1, dataset);
        var ranks = RunRanks(world, Sgd, 1, dataset: dataset);

        var (name, error) = WorstRelativeError(ranks[1].FirstGradients, single.FirstGradients);
        Assert.Equal([GlobalBatch / world], ranks[1].Samples);
        Assert.True(Math.Abs(ranks[1].Losses[0] - single.Losses[0]) <= 1e-5 * Math.Abs(single.Losses[0]),
            $"loss over rank 0's 16 samples: {ranks[1].Losses[0]:F7} on the empty rank, {single.Losses[0]:F7} in one process");
        Assert.True(error <= 1e-5, $"step-1 gradient of {name} differs from one process by {error:E2}; expected <= 1e-5");
    }

    /// <summary>Fashion-MNIST with samples that fail to load, as corrupt images would.</summary>
    private sealed class DroppingDataset(IImageTextDataset inner, params int[] dropped) : IImageTextDataset
    {
        public string Name => $"{inner.Name} without {dropped.Length} samples";

        public int Count => inner.Count;

        public IReadOnlyList<string>? ClassNames => inner.ClassNames;

        public SkipCounters Skips { get; } = new();

        public bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out string caption, out int label)
        {
            if (dropped.Contains(index))
            {
                Skips.Record(SkipReason.UndecodableImage, $"#{index}");
                (caption, label) = (string.Empty, -1);
                return false;
            }

            return inner.TryLoad(index, spec, pixels, out caption, out label);
        }
    }
}

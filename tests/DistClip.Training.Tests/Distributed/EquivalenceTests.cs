using DistClip.Config;
using DistClip.Training.Distributed;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;
using Xunit.Abstractions;
using static DistClip.Training.Tests.Distributed.ClusterHarness;

namespace DistClip.Training.Tests.Distributed;

/// <summary>
/// The contract of docs/training-step.md: N ranks hold the same parameters as one process that
/// trained on the same global batches, to float32 tolerance (the sums only run in another order).
/// </summary>
public class EquivalenceTests(ITestOutputHelper output)
{
    private const int Steps = 5;

    // Plain SGD without clipping or warm-up: the update is exactly −lr·g, so parameters can only
    // drift apart as far as the gradients do.
    private static readonly OptimizerSettings Sgd = new() { Kind = OptimizerKind.Sgd, LearningRate = 0.5, WarmupSteps = 0, GradClipNorm = 0 };

    private static readonly OptimizerSettings AdamW = new() { LearningRate = 1e-3, WarmupSteps = 2 };

    private static readonly Lazy<RunRecord> SgdReference = new(() => RunSingle(Sgd, Steps));

    [Theory]
    [InlineData(1, GroupStepOptions.DefaultBucketBytes)]
    [InlineData(2, GroupStepOptions.DefaultBucketBytes)]
    [InlineData(4, 256 << 10)] // many buckets: packing overlaps the transfers
    public void Sgd_on_N_ranks_matches_one_process_on_the_same_global_batches(int world, int bucketBytes)
    {
        var single = SgdReference.Value;
        var ranks = RunRanks(world, Sgd, Steps, new GroupStepOptions { BucketBytes = bucketBytes });

        var (gradName, gradError) = WorstRelativeError(ranks[0].FirstGradients, single.FirstGradients);
        var (paramName, paramError) = WorstRelativeError(ranks[0].Parameters, single.Parameters);
        output.WriteLine($"N={world}: step-1 gradients worst {gradError:E2} ({gradName}); parameters after {Steps} steps worst {paramError:E2} ({paramName})");
        Assert.True(gradError <= 1e-5, $"step-1 gradient of {gradName} differs from one process by {gradError:E2} of its largest magnitude; expected <= 1e-5");
        Assert.True(paramError <= 1e-5, $"{paramName} after {Steps} SGD steps differs from one process by {paramError:E2} of its largest magnitude; expected <= 1e-5");
        Assert.Equal(Enumerable.Repeat(GlobalBatch, Steps), ranks[0].Samples);

        // Steps 2..5 ran with every gradient living in the reduction buffer (backward accumulated into
        // it), the temperature's too: each rank holds its part of dL/dt.
        Assert.Equal(ranks[0].Parameters.Count, ranks[0].GradientsInBuffer);

        for (int r = 1; r < world; r++)
        {
            Assert.True(BitIdentical(ranks[r].FirstFeatures, ranks[0].FirstFeatures), $"rank {r}'s global features differ from rank 0's");
            foreach (var (name, values) in ranks[0].FirstGradients)
            {
                Assert.True(BitIdentical(ranks[r].FirstGradients[name], values), $"rank {r}'s reduced gradient of {name} differs from rank 0's");
            }

            foreach (var (name, values) in ranks[0].Parameters)
            {
                Assert.True(BitIdentical(ranks[r].Parameters[name], values), $"rank {r}'s {name} differs from rank 0's after {Steps} steps");
            }
        }
    }

    [Theory]
    [InlineData(2, GroupStepOptions.DefaultBucketBytes, 0)]
    [InlineData(4, 64 << 10, 0)] // buckets smaller than a segment
    [InlineData(2, GroupStepOptions.DefaultBucketBytes, 8)] // micro-batches: the segments are released after the last one
    public void A_ViT_whose_image_tower_is_reduced_segment_by_segment_matches_one_process(int world, int bucketBytes, int microBatch)
    {
        // Each half-block of the image tower is its own stage, released as its backward ends (ClipTrainer).
        var config = VitConfig;
        using (var probe = NewModel(Seed, config))
        {
            Assert.Equal(2 * config.Vision.Layers + 1, probe.ImageSegments().Count);
        }

        var single = RunSingle(Sgd, Steps, config: config);
        var ranks = RunRanks(world, Sgd, Steps, new GroupStepOptions { BucketBytes = bucketBytes }, step: new StepSettings { MicroBatch = microBatch }, config: config);

        var (gradName, gradError) = WorstRelativeError(ranks[0].FirstGradients, single.FirstGradients);
        var (paramName, paramError) = WorstRelativeError(ranks[0].Parameters, single.Parameters);
        output.WriteLine($"ViT, N={world}, micro-batch {microBatch}: step-1 gradients worst {gradError:E2} ({gradName}); parameters after {Steps} steps worst {paramError:E2} ({paramName})");
        Assert.True(gradError <= 1e-5, $"step-1 gradient of {gradName} differs from one process by {gradError:E2}; expected <= 1e-5");
        Assert.True(paramError <= 1e-5, $"{paramName} after {Steps} SGD steps differs from one process by {paramError:E2}; expected <= 1e-5");
        Assert.Equal(ranks[0].Parameters.Count, ranks[0].GradientsInBuffer);
        for (int r = 1; r < world; r++)
        {
            foreach (var (name, values) in ranks[0].Parameters)
            {
                Assert.True(BitIdentical(ranks[r].Parameters[name], values), $"rank {r}'s {name} differs from rank 0's after {Steps} steps");
            }
        }
    }

    [Fact]
    public void Sgd_reference_moves_the_parameters_far_beyond_the_tolerance()
    {
        // Guards the equivalence test against passing vacuously.
        using var initial = NewModel(Seed);
        var (name, moved) = Parameters(initial)
            .Select(kv => (kv.Key, RelativeError(SgdReference.Value.Parameters[kv.Key], kv.Value)))
            .Where(e => e.Key != "logit_scale")
            .MinBy(e => e.Item2);
        Assert.True(moved > 1e-3, $"{name} moved by only {moved:E2} of its largest magnitude in {Steps} steps");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void AdamW_loss_curves_on_N_ranks_match_one_process(int world)
    {
        var single = RunSingle(AdamW, Steps);
        var ranks = RunRanks(world, AdamW, Steps);

        output.WriteLine($"one process: {string.Join(", ", single.Losses.Select(l => l.ToString("F6")))}");
        output.WriteLine($"N={world}:     {string.Join(", ", ranks[0].Losses.Select(l => l.ToString("F6")))}");
        for (int s = 0; s < Steps; s++)
        {
            Assert.True(Math.Abs(ranks[0].Losses[s] - single.Losses[s]) <= 1e-4,
                $"step {s + 1}: loss {ranks[0].Losses[s]:F7} on {world} ranks, {single.Losses[s]:F7} in one process; expected within 1e-4");
            for (int r = 1; r < world; r++)
            {
                Assert.Equal(ranks[0].Losses[s], ranks[r].Losses[s]);
            }
        }

        Assert.True(single.Losses[^1] < single.Losses[0], "the loss should fall over the run");
    }

    [Fact]
    public void The_temperature_gradient_is_the_one_process_gradient_not_N_times_it()
    {
        const int world = 4;
        var single = SgdReference.Value;
        var ranks = RunRanks(world, Sgd, steps: 1);

        float expected = single.FirstGradients["logit_scale"][0];
        output.WriteLine($"dL/dt: one process {expected:E6}, 4 ranks {ranks[0].FirstGradients["logit_scale"][0]:E6}");
        Assert.True(Math.Abs(expected) > 1e-3, $"dL/dt = {expected:E2} is too small to tell 1× from 4×");
        for (int r = 0; r < world; r++)
        {
            float actual = ranks[r].FirstGradients["logit_scale"][0];
            Assert.True(Math.Abs(actual - expected) <= 1e-5 * Math.Abs(expected),
                $"rank {r}: dL/dt = {actual:E6}, one process {expected:E6} ({actual / expected:F3}×)");
        }
    }
}

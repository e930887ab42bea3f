using DistClip.Config;
using DistClip.Model.Losses;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;
using TorchSharp;
using Xunit.Abstractions;
using static DistClip.Training.Tests.Distributed.ClusterHarness;
using static TorchSharp.torch;

namespace DistClip.Training.Tests.Distributed;

/// <summary>
/// The memory-linear loss pipeline against its definition: N ranks computing row blocks (softmax) or
/// ring blocks (sigmoid) in tiles, and feature-cached accumulation, give the gradients of one process
/// that forms the whole B × B matrix as one autograd expression and backpropagates it.
/// </summary>
public class LossPipelineTests(ITestOutputHelper output)
{
    private static readonly OptimizerSettings Sgd = new() { Kind = OptimizerKind.Sgd, LearningRate = 0.5, WarmupSteps = 0, GradClipNorm = 0 };

    [Theory]
    [InlineData(LossKind.Softmax, StepSettings.DefaultLossChunk, 1)]
    [InlineData(LossKind.Softmax, StepSettings.DefaultLossChunk, 2)]
    [InlineData(LossKind.Softmax, StepSettings.DefaultLossChunk, 4)]
    [InlineData(LossKind.Softmax, 5, 1)] // 32 rows in tiles of 5: neither divides the other
    [InlineData(LossKind.Softmax, 7, 2)]
    [InlineData(LossKind.Softmax, 3, 4)]
    [InlineData(LossKind.Siglip, StepSettings.DefaultLossChunk, 1)]
    [InlineData(LossKind.Siglip, StepSettings.DefaultLossChunk, 2)]
    [InlineData(LossKind.Siglip, 5, 4)]
    public void First_step_gradients_on_N_ranks_are_the_whole_matrix_autograd_gradients(LossKind loss, int chunk, int world)
    {
        var step = new StepSettings { Loss = loss, LossChunk = chunk };
        var expected = ReferenceGradients(step);
        var ranks = RunRanks(world, Sgd, steps: 1, step: step);

        var (name, error) = WorstRelativeError(ranks[0].FirstGradients, expected);
        output.WriteLine($"{loss}, chunk {chunk}, N={world}: worst gradient error {error:E2} ({name}); loss {ranks[0].Losses[0]:F6}");
        Assert.True(error <= 1e-5, $"{name}'s step-1 gradient differs from the whole-matrix autograd gradient by {error:E2} of its largest magnitude; expected <= 1e-5");
        Assert.Contains("logit_scale", expected.Keys);
        Assert.Equal(loss == LossKind.Siglip, expected.ContainsKey("logit_bias"));
        for (int r = 1; r < world; r++)
        {
            foreach (var (parameter, values) in ranks[0].Parameters)
            {
                Assert.True(BitIdentical(ranks[r].Parameters[parameter], values), $"rank {r}'s {parameter} differs from rank 0's after the step");
            }

            Assert.Equal(ranks[0].Losses, ranks[r].Losses);
        }
    }

    [Theory]
    [InlineData(LossKind.Softmax, 1, 0.5)]
    [InlineData(LossKind.Softmax, 2, 0.5)]
    [InlineData(LossKind.Siglip, 2, 0.005)]
    public void Accumulating_over_micro_batches_of_128_matches_the_global_batch_of_1024_in_one_pass(LossKind loss, int world, double rate)
    {
        const int globalBatch = 1024;
        const int steps = 5;
        var sgd = Sgd with { LearningRate = rate };
        var whole = RunSingle(sgd, steps, step: new StepSettings { Loss = loss }, globalBatch: globalBatch);
        var accumulated = RunRanks(world, sgd, steps, step: new StepSettings { Loss = loss, MicroBatch = 128 }, globalBatch: globalBatch);

        // Step 1 starts from the same weights: the accumulated gradient equals the one-pass gradient element by element.
        var (firstName, firstError) = WorstRelativeError(accumulated[0].FirstGradients, whole.FirstGradients);
        Assert.True(firstError <= 1e-5, $"{firstName}'s step-1 gradient differs by {firstError:E2} of its largest magnitude with micro-batches of 128; expected <= 1e-5");

        // After 5 steps at a high rate the two runs' rounding has been amplified along the way, and an
        // element-wise bound would measure luck: clip-micro's image tower is Linear → ReLU → Linear, and
        // once rounding puts a sample's pre-activation of one hidden unit on the other side of zero,
        // that unit's whole row of fc1 takes a different update (seen: one row of 512 differing by
        // 1.5e-6 while the rest differ by 1.5e-8, 2.4e-5 of the largest weight). So the parameters are
        // compared as tensors, ‖Δ‖ / ‖w‖, which a dropped, doubled or stale micro-batch moves by 1e-2 and more.
        var (name, error) = WorstRelativeL2Error(accumulated[0].Parameters, whole.Parameters);
        var (worstElementName, worstElement) = WorstRelativeError(accumulated[0].Parameters, whole.Parameters);
        output.WriteLine($"{loss}, N={world}: step-1 gradients worst {firstError:E2} ({firstName}); parameters after {steps} steps worst {error:E2} as tensors ({name}), {worstElement:E2} by element ({worstElementName})");
        output.WriteLine($"losses: one pass {string.Join(", ", whole.Losses.Select(l => l.ToString("F6")))}; accumulated {string.Join(", ", accumulated[0].Losses.Select(l => l.ToString("F6")))}");
        Assert.True(error <= 1e-5, $"{name} after {steps} SGD steps differs by {error:E2} (‖Δ‖ / ‖w‖) with micro-batches of 128; expected <= 1e-5");
        for (int s = 0; s < steps; s++)
        {
            Assert.True(Math.Abs(accumulated[0].Losses[s] - whole.Losses[s]) <= 1e-5 * Math.Abs(whole.Losses[s]),
                $"step {s + 1}: loss {accumulated[0].Losses[s]:F7} accumulated, {whole.Losses[s]:F7} in one pass");
        }

        Assert.Equal(Enumerable.Repeat(globalBatch, steps), accumulated[0].Samples);

        // The comparison means something only if training moved the weights far beyond the tolerance.
        using var initial = NewModel(Seed, ConfigFor(new StepSettings { Loss = loss }));
        var (still, moved) = Parameters(initial).Where(kv => kv.Key != "logit_scale")
            .Select(kv => (kv.Key, RelativeError(whole.Parameters[kv.Key], kv.Value))).MinBy(e => e.Item2);
        Assert.True(moved > 1e-3, $"{still} moved by only {moved:E2} of its largest magnitude in {steps} steps");
    }

    [Fact]
    public void The_sigmoid_loss_starts_at_siglips_temperature_and_bias()
    {
        using var model = NewModel(Seed, ConfigFor(new StepSettings { Loss = LossKind.Siglip }));
        Assert.Equal(Math.Log(10), model.LogitScale.item<float>(), 5);
        Assert.Equal(-10, model.LogitBias!.item<float>(), 5);
        using var softmax = NewModel(Seed);
        Assert.Null(softmax.LogitBias);
    }

    /// <summary>
    /// One process, the whole first global batch, the loss as one autograd expression over the whole
    /// [B, B] matrix (<see cref="ContrastiveLoss"/> or <see cref="SigmoidLoss"/>), loss.backward().
    /// </summary>
    private static Dictionary<string, float[]> ReferenceGradients(StepSettings step)
    {
        using var model = NewModel(Seed, ConfigFor(step));
        var batch = LocalBatches(1, 0, 1)[0];
        using var scope = NewDisposeScope();
        model.train();
        var images = BatchTensors.Images(batch, CPU);
        var (tokens, lengths) = BatchTensors.Text(batch, CPU);
        var imageFeatures = Model.Features.Normalize(model.EncodeImage(images));
        var textFeatures = Model.Features.Normalize(model.EncodeText(tokens, lengths));
        var loss = step.Loss == LossKind.Siglip
            ? SigmoidLoss.Compute(imageFeatures, textFeatures, model.LogitScale, model.LogitBias!)
            : ContrastiveLoss.Compute(imageFeatures, textFeatures, model.LogitScale);
        loss.backward();
        return Gradients(model);
    }
}

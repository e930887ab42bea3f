using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Checkpointing;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;
using FusedAdamW = DistClip.Training.Optimization.Fused.AdamW;
using OptimizerState = DistClip.Training.Checkpointing.OptimizerState;

namespace DistClip.Training.Tests.Optimization;

/// <summary>The fused AdamW against TorchSharp's: the same update, the same state, the same checkpoint bytes.</summary>
public sealed class FusedAdamWTests(ITestOutputHelper output)
{
    private static readonly OptimizerSettings Recipe = new() { LearningRate = 2e-3, WarmupSteps = 10, WeightDecay = 0.2, GradClipNorm = 1.0 };

    [Theory]
    [InlineData(1)]
    [InlineData(2)] // blocks updated in parallel, each thread with its own root buffer
    public void Three_updates_of_one_tensor_equal_TorchSharps_ops_to_the_last_bit_or_nearly(int threads)
    {
        int before = torch.get_num_threads();
        torch.set_num_threads(threads);
        try
        {
            ThreeUpdates();
        }
        finally
        {
            torch.set_num_threads(before);
        }
    }

    private void ThreeUpdates()
    {
        torch.manual_seed(3);
        const int n = 100_003; // not a multiple of any vector width: the scalar tail runs too
        using var start = torch.randn(n);
        using var small = 1e-2.ToScalar();
        var grads = Enumerable.Range(0, 3).Select(_ => torch.randn(n).mul(small)).ToList();
        var reference = new Parameter(start.clone());
        var fused = new Parameter(start.clone());
        using var torchSharp = optim.AdamW([new AdamW.ParamGroup([reference], new AdamW.Options { LearningRate = 1e-3, weight_decay = 0.2, beta1 = 0.9, beta2 = 0.98, eps = 1e-6 })]);
        using var ours = new FusedAdamW([new AdamW.ParamGroup([fused], new AdamW.Options { LearningRate = 1e-3, weight_decay = 0.2, beta1 = 0.9, beta2 = 0.98, eps = 1e-6 })], 1e-3, 0.9, 0.98, 1e-6, 0.2);
        foreach (var g in grads)
        {
            reference.grad = g.clone();
            fused.grad = g.clone();
            torchSharp.step();
            ours.step();
        }

        var a = (AdamW.State)torchSharp.state_dict().State[0];
        var b = (AdamW.State)ours.state_dict().State[0];
        Assert.Equal(3, ours.FusedSteps);
        Assert.Equal(a.step, b.step);
        foreach (var (name, x, y) in new[] { ("param", (Tensor)reference, (Tensor)fused), ("exp_avg", a.exp_avg, b.exp_avg), ("exp_avg_sq", a.exp_avg_sq, b.exp_avg_sq) })
        {
            long differing = x.ne(y).sum().item<long>();
            output.WriteLine($"{name}: {differing} of {n} elements differ");
            // A few may differ in the last bit where libtorch's scalar tail rounds differently from its vector body.
            Assert.True(differing <= 64, $"{name}: expected at most 64 of {n} elements to differ in the last bits, {differing} did");
            Assert.True(RelativeDifference(x, y) <= 1e-6, $"{name}: relative difference {RelativeDifference(x, y):E2}");
        }
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(double.PositiveInfinity)]
    public void The_clipping_norm_and_factor_reproduce_clip_grad_norm_to_the_bit(double maxNorm)
    {
        torch.manual_seed(5);
        var parameters = Enumerable.Range(0, 4).Select(i => new Parameter(torch.randn(1000 + i))).ToList();
        foreach (var p in parameters)
        {
            p.grad = torch.randn_like(p);
        }

        var before = parameters.Select(p => p.grad!.clone()).ToList();
        var (norm, factor) = GradientClipping.Measure(parameters, maxNorm);
        double expected = torch.nn.utils.clip_grad_norm_(parameters, maxNorm);

        Assert.Equal(expected, norm);
        for (int i = 0; i < parameters.Count; i++)
        {
            using var by = factor.ToScalar();
            using var scaled = before[i].mul(by);
            Assert.True(scaled.equal(parameters[i].grad!).all().item<bool>(), $"gradient {i}: g · {factor} differs from what clip_grad_norm_ left");
        }
    }

    [Fact]
    public void Over_100_steps_of_clip_micro_the_fused_AdamW_matches_TorchSharps_within_1e_6()
    {
        var batches = Batches(100);
        using var reference = Trainer(AdamWImplementation.TorchSharp, 100);
        using var fused = Trainer(AdamWImplementation.Fused, 100);
        var skipped = 0;
        foreach (var batch in batches)
        {
            var a = reference.Step(batch, 0, CancellationToken.None);
            var b = fused.Step(batch, 0, CancellationToken.None);
            skipped += a.Skipped || b.Skipped ? 1 : 0;
        }

        Assert.Equal(0, skipped);
        Assert.Equal(100, ((FusedAdamW)fused.Optimizer).FusedSteps);
        var (worst, where) = WorstDifference(reference, fused);
        output.WriteLine($"worst relative difference after 100 steps: {worst:E2} ({where})");
        Assert.True(worst <= 1e-6, $"expected every parameter and moment within 1e-6 (relative, max over tensors) of TorchSharp's AdamW, {where} is {worst:E2} away");
    }

    [Theory]
    [InlineData(AdamWImplementation.Fused, AdamWImplementation.TorchSharp)]
    [InlineData(AdamWImplementation.TorchSharp, AdamWImplementation.Fused)]
    public void A_checkpoint_written_by_one_AdamW_resumes_in_the_other(AdamWImplementation writer, AdamWImplementation reader)
    {
        var batches = Batches(4);
        using var original = Trainer(writer, 10);
        for (int i = 0; i < 3; i++)
        {
            original.Step(batches[i], 0, CancellationToken.None);
        }

        using var model = new MemoryStream();
        using var state = new MemoryStream();
        ModelState.Save(original.Model, model);
        OptimizerState.Save((OptimizerHelper)original.Optimizer, state);
        using var resumed = Trainer(reader, 10, seed: 99);
        model.Position = 0;
        state.Position = 0;
        ModelState.Load(resumed.Model, model);
        OptimizerState.Load((OptimizerHelper)resumed.Optimizer, state);
        resumed.StepsDone = 3;

        // Either writes the same bytes for the same state: the format is TorchSharp's, unchanged.
        using var rewritten = new MemoryStream();
        OptimizerState.Save((OptimizerHelper)resumed.Optimizer, rewritten);
        Assert.Equal(state.ToArray(), rewritten.ToArray());

        original.Step(batches[3], 0, CancellationToken.None);
        resumed.Step(batches[3], 0, CancellationToken.None);
        var (worst, where) = WorstDifference(original, resumed);
        Assert.True(worst <= 1e-6, $"expected the resumed step 4 within 1e-6 of the uninterrupted one, {where} is {worst:E2} away");
    }

    [Fact]
    public void A_skipped_non_finite_step_leaves_parameters_moments_and_step_counts_untouched()
    {
        var batches = Batches(2);
        using var trainer = Trainer(AdamWImplementation.Fused, 10, hooks: new PoisonAt(2));
        trainer.Step(batches[0], 0, CancellationToken.None);
        var before = Snapshot(trainer);

        var metrics = trainer.Step(batches[1], 0, CancellationToken.None);

        Assert.True(metrics.Skipped, "the poisoned step must be skipped");
        Assert.Equal(1, ((FusedAdamW)trainer.Optimizer).FusedSteps);
        var after = Snapshot(trainer);
        foreach (var (name, tensor) in before)
        {
            Assert.True(tensor.equal(after[name]).all().item<bool>(), $"{name} changed in a skipped step");
        }

        Assert.All(((OptimizerHelper)trainer.Optimizer).state_dict().State, s => Assert.Equal(1, ((AdamW.State)s).step));
    }

    private static ClipTrainer Trainer(AdamWImplementation adamW, int totalSteps, int seed = 11, IStepHooks? hooks = null)
    {
        torch.manual_seed(seed);
        var model = new ClipModel(ClipConfig.Load("clip-micro"));
        return new ClipTrainer(model, Recipe, totalSteps, torch.CPU, adamW, hooks: hooks);
    }

    private static List<Batch> Batches(int count)
    {
        var config = ClipConfig.Load("clip-micro");
        var dataset = FashionMnistDataset.Open(FashionMnistSplit.Train);
        var sampler = new GlobalBatchSampler(dataset.Count, 32, 1, seed: 1);
        using var loader = new ClipDataLoader(dataset, ImageSpec.FashionMnist, ClipTokenizer.CreateR50k(), config.Text.ContextLength, sampler, 0, new SamplerCursor(0, 0));
        return [.. Enumerable.Range(0, count).Select(_ => loader.Next(CancellationToken.None))];
    }

    /// <summary>max |a − b| / max |b|, the worst over every parameter and both moments of each.</summary>
    private static (double Worst, string Where) WorstDifference(ClipTrainer a, ClipTrainer b)
    {
        var x = Snapshot(a);
        var y = Snapshot(b);
        return x.Select(kv => (RelativeDifference(kv.Value, y[kv.Key]), kv.Key)).MaxBy(d => d.Item1);
    }

    private static double RelativeDifference(Tensor x, Tensor y)
    {
        using var scope = torch.NewDisposeScope();
        double scale = y.abs().max().item<float>();
        double difference = (x - y).abs().max().item<float>();
        return scale == 0 ? difference : difference / scale;
    }

    private static Dictionary<string, Tensor> Snapshot(ClipTrainer trainer)
    {
        var copies = trainer.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var states = ((OptimizerHelper)trainer.Optimizer).state_dict().State;
        for (int i = 0; i < states.Count; i++)
        {
            var s = (AdamW.State)states[i];
            copies[$"exp_avg {i}"] = s.exp_avg.clone();
            copies[$"exp_avg_sq {i}"] = s.exp_avg_sq.clone();
        }

        return copies;
    }

    private sealed class PoisonAt(long step) : IStepHooks
    {
        public void At(TrainingPhase point, long current)
        {
        }

        public bool PoisonGradients(long current) => current == step;
    }
}

using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using Xunit.Abstractions;

namespace DistClip.Training.Tests;

public class LearningTests(ITestOutputHelper output)
{
    /// <summary>Steps, batch and rate chosen so that the run stays well under two minutes on 2 cores.</summary>
    internal static TrainOptions MicroRun(int steps) => new()
    {
        Model = "clip-micro",
        Steps = steps,
        GlobalBatch = 256,
        Seed = 7,
        Threads = 2,
        RetrievalSamples = 1000,
        Optimizer = new OptimizerSettings { LearningRate = 2e-3, WarmupSteps = 20, WeightDecay = 0.1 },
    };

    [Fact]
    public void Clip_micro_trained_on_fashion_mnist_reaches_70_percent_zero_shot_top1_on_the_test_set()
    {
        var options = MicroRun(steps: 150);
        var summary = SingleProcessRun.Run(options, NullLogger.Instance, progress: null, CancellationToken.None);

        output.WriteLine($"top-1 {summary.ZeroShotTop1:P2}, top-5 {summary.ZeroShotTop5:P2}, loss {summary.FinalLoss:F3}, {summary.SamplesPerSecond:F0} samples/s, {summary.WallSeconds:F1} s");
        Assert.Equal(10_000, summary.ZeroShotSamples);
        Assert.True(summary.ZeroShotTop1 >= 0.70, $"expected zero-shot top-1 >= 70% after {options.Steps} steps, got {summary.ZeroShotTop1:P2}");
        Assert.True(summary.ZeroShotTop5 >= summary.ZeroShotTop1, "top-5 must be at least top-1");
        Assert.NotNull(summary.RecallAt1);
        Assert.Equal(options.Steps, summary.Steps);
        Assert.Equal(0, summary.SkippedSamples);
    }

    [Fact]
    public void Clip_micro_trained_with_the_sigmoid_loss_reaches_70_percent_zero_shot_top1()
    {
        var options = MicroRun(steps: 150) with { Loss = LossKind.Siglip, RetrievalSamples = 0 };
        var summary = SingleProcessRun.Run(options, NullLogger.Instance, progress: null, CancellationToken.None);

        output.WriteLine($"siglip: top-1 {summary.ZeroShotTop1:P2}, top-5 {summary.ZeroShotTop5:P2}, loss {summary.FinalLoss:F3}, {summary.WallSeconds:F1} s");
        Assert.Equal("siglip", summary.Loss);
        Assert.True(summary.ZeroShotTop1 >= 0.70, $"expected zero-shot top-1 >= 70% after {options.Steps} steps with the sigmoid loss, got {summary.ZeroShotTop1:P2}");
    }

    [Fact]
    public void The_temperature_is_clamped_to_ln_100_after_a_step()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var config = ClipConfig.Load("clip-micro");
        using var model = new ClipModel(config);
        using (torch.no_grad())
        {
            using var six = 6.0.ToScalar();
            model.LogitScale.fill_(six); // exp(6) ≈ 403, beyond CLIP's cap of 100
        }

        var dataset = FashionMnistDataset.Open(FashionMnistSplit.Train);
        var tokenizer = ClipTokenizer.CreateR50k();
        var sampler = new GlobalBatchSampler(dataset.Count, 16, 1, seed: 1);
        using var loader = new ClipDataLoader(dataset, ImageSpec.FashionMnist, tokenizer, config.Text.ContextLength, sampler, 0, new SamplerCursor(0, 0));
        using var trainer = new ClipTrainer(model, new OptimizerSettings { Kind = OptimizerKind.Sgd, LearningRate = 1e-4 }, 1, torch.CPU);
        var metrics = trainer.Step(loader.Next(CancellationToken.None), 0, CancellationToken.None);

        Assert.True(metrics.LogitScale <= Math.Log(100) + 1e-6, $"expected t <= ln 100 = {Math.Log(100):F6}, got {metrics.LogitScale:F6}");
        Assert.Equal(Math.Log(100), model.LogitScale.item<float>(), 5);
        Assert.Equal(1, trainer.StepsDone);
    }

    [Fact]
    public void Weight_decay_applies_only_to_parameters_of_rank_two_or_more()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        using var model = new ClipModel(ClipConfig.Load("clip-micro"));
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        using var optimizer = OptimizerFactory.Create(model, new OptimizerSettings { LearningRate = 0.1, WeightDecay = 0.5 });
        // Zero gradients: AdamW's update is then decay alone (p ← p − lr·wd·p), visible only on decayed tensors.
        foreach (var p in model.parameters())
        {
            p.grad = torch.zeros_like(p);
        }

        optimizer.step();
        foreach (var (name, parameter) in model.named_parameters())
        {
            bool changed = !parameter.detach().allclose(before[name]);
            Assert.True(changed == (parameter.dim() >= 2), $"{name} (rank {parameter.dim()}): expected {(parameter.dim() >= 2 ? "decayed" : "untouched")}");
        }
    }
}

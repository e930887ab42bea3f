using System.Diagnostics;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Steps;

/// <summary>
/// One rank's training step, exactly as DESIGN.md writes it: forward both towers, normalise,
/// all-gather, full global loss, backward, all-reduce, clip, AdamW, clamp the temperature.
/// With <see cref="SingleProcessCollectives"/> it is plain single-device training.
/// </summary>
public sealed class ClipTrainer : IDisposable
{
    private readonly optim.Optimizer _optimizer;
    private readonly LearningRateSchedule _schedule;
    private readonly IStepCollectives _collectives;
    private readonly List<Parameter> _parameters;
    private readonly List<Parameter> _towerParameters;
    private readonly double _gradClip;

    public ClipTrainer(ClipModel model, OptimizerSettings options, int totalSteps, Device device, IStepCollectives? collectives = null)
    {
        Model = model;
        Device = device;
        _collectives = collectives ?? SingleProcessCollectives.Instance;
        _parameters = model.parameters().Where(p => p.requires_grad).ToList();
        // Every rank computes the full global loss, so the temperature's gradient is already whole
        // (and identical) on each rank: summing it over ranks would count it N times.
        _towerParameters = _parameters.Where(p => p.Handle != model.LogitScale.Handle).ToList();
        _optimizer = OptimizerFactory.Create(model, options);
        _schedule = new LearningRateSchedule(options.LearningRate, options.WarmupSteps, totalSteps, options.MinLearningRate);
        _gradClip = options.GradClipNorm;
    }

    public ClipModel Model { get; }

    public Device Device { get; }

    public optim.Optimizer Optimizer => _optimizer;

    /// <summary>Optimizer steps taken so far; the schedule and checkpoints key on it.</summary>
    public long StepsDone { get; set; }

    /// <summary>Takes one optimizer step on this rank's part of a global batch.</summary>
    /// <param name="batch">This rank's local batch.</param>
    /// <param name="dataSeconds">How long the caller waited for the batch (reported, not measured here).</param>
    public StepMetrics Step(Batch batch, double dataSeconds, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        Model.train();
        using var scope = torch.NewDisposeScope();
        double rate = _schedule.At(StepsDone);
        OptimizerFactory.SetLearningRate(_optimizer, rate);
        var clock = Stopwatch.StartNew();

        // Forward: [b, C, H, W] images and [b, L] tokens → [b, D] unit vectors.
        var images = BatchTensors.Images(batch, Device);
        var (tokens, lengths) = BatchTensors.Text(batch, Device);
        var imageFeatures = Features.Normalize(Model.EncodeImage(images));
        var textFeatures = Features.Normalize(Model.EncodeText(tokens, lengths));
        double forward = Lap(clock);

        // All-gather: [b, D] → [B, D]; only this rank's rows carry gradient.
        var (allImages, allTexts) = _collectives.GatherFeatures(imageFeatures, textFeatures, ct);
        double gather = Lap(clock);

        var (loss, logits) = ContrastiveLoss.ComputeWithLogits(allImages, allTexts, Model.LogitScale); // logits [B, B]
        double lossValue = loss.item<float>();
        double lossTime = Lap(clock);

        _optimizer.zero_grad();
        loss.backward();
        double backward = Lap(clock);

        _collectives.ReduceGradients(_towerParameters, ct);
        double reduce = Lap(clock);

        // An infinite bound measures the norm without clipping.
        double gradNorm = torch.nn.utils.clip_grad_norm_(_parameters, _gradClip > 0 ? _gradClip : double.PositiveInfinity);
        _optimizer.step();
        Model.ClampLogitScale();
        StepsDone++;
        double optimizer = Lap(clock);

        // The loss's own logits: a positive scale leaves each row's and column's argmax unchanged.
        var (i2t, t2i) = ContrastiveLoss.Accuracy(logits.detach());
        double logitScale = Model.LogitScale.item<float>();
        return new StepMetrics(StepsDone, (int)allImages.shape[0], lossValue, rate, logitScale, gradNorm, i2t, t2i,
            new PhaseTimes(dataSeconds, forward, gather, lossTime, backward, reduce, optimizer));
    }

    private double Lap(Stopwatch clock)
    {
        // CUDA kernels run asynchronously; without a sync the time lands in whichever phase waits next.
        if (Device.type == DeviceType.CUDA)
        {
            torch.cuda.synchronize();
        }

        double seconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        return seconds;
    }

    public void Dispose() => _optimizer.Dispose();
}

using System.Diagnostics;
using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Steps;

/// <summary>
/// One rank's training step (docs/training-step.md): forward both towers, normalise, the loss stage
/// (this rank's share of the global loss and the exact gradient for its features), backward of that
/// gradient through the towers, all-reduce, clip, AdamW, clamp the temperature (or, when the global
/// gradient norm or loss is not finite, skip those three on every rank alike). With
/// <see cref="SingleProcessCollectives"/> it is plain single-device training.
/// </summary>
/// <remarks>
/// With <see cref="StepSettings.MicroBatch"/> below the local batch the towers run twice
/// (feature-cached accumulation, GradCache): first every micro-batch without autograd, to get the
/// features the loss needs; then each micro-batch again with autograd, backpropagating its slice of
/// the features' gradient. The update equals the one without accumulation to float32 tolerance;
/// activation memory is one micro-batch's. (BatchNorm, in the ResNet tower, normalises over each
/// micro-batch and updates its running statistics in both passes, as open_clip's accumulation does.)
/// </remarks>
public sealed class ClipTrainer : IDisposable
{
    private readonly optim.Optimizer _optimizer;
    private readonly LearningRateSchedule _schedule;
    private readonly IStepCollectives _collectives;
    private readonly LossStage _loss;
    private readonly StepSettings _step;
    private readonly List<Parameter> _parameters;
    private readonly IReadOnlyList<Parameter>[] _stages; // [text tower + temperature, image tower's segments top first]: reduced in this order
    private readonly bool _segmentImage;
    private readonly bool _sparseTokens; // the token table's gradient arrives as rows added into a dense one
    private readonly double _gradClip;
    private readonly IStepHooks _hooks;
    private volatile TrainingPhase _phase = TrainingPhase.Step;
    private CollectiveWaits? _previousWaits; // this rank's, in the last step it completed; exchanged in the next step's first collective

    public ClipTrainer(
        ClipModel model, OptimizerSettings options, int totalSteps, Device device, IStepCollectives? collectives = null, StepSettings? step = null,
        IStepHooks? hooks = null)
        : this(model, options, totalSteps, device, AdamWImplementation.Fused, collectives, step, hooks)
    {
    }

    /// <param name="adamW">Which AdamW update runs (tests compare the fused one against TorchSharp's).</param>
    internal ClipTrainer(
        ClipModel model, OptimizerSettings options, int totalSteps, Device device, AdamWImplementation adamW, IStepCollectives? collectives = null,
        StepSettings? step = null, IStepHooks? hooks = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        Device = device;
        _step = step ?? new StepSettings();
        ArgumentOutOfRangeException.ThrowIfNegative(_step.MicroBatch);
        if (_step.Loss == LossKind.Siglip && model.LogitBias is null)
        {
            throw new ArgumentException("the sigmoid loss needs a model with a logit bias (ClipConfig.WithLogitBias)", nameof(model));
        }

        _collectives = collectives ?? SingleProcessCollectives.Instance;
        _loss = LossStage.Create(_step.Loss, _collectives, _step.LossChunk);
        // The temperature and bias too: each rank's gradient for them is its part of a sum over rows.
        _parameters = model.parameters().Where(p => p.requires_grad).ToList();
        var (text, image) = model.TowerParameters();
        // With peers to reduce with, the image tower goes in segments (a ViT: half-blocks), each sent
        // as soon as its backward ends; alone, as one stage.
        _segmentImage = _collectives.WorldSize > 1 && model.ImageSegments().Count > 1;
        IEnumerable<IReadOnlyList<Parameter>> imageStages = _segmentImage ? model.ImageSegments() : [image];
        _stages = [[.. text.Where(p => p.requires_grad)], .. imageStages.Select(s => (IReadOnlyList<Parameter>)[.. s.Where(p => p.requires_grad)])];
        _optimizer = OptimizerFactory.Create(model, options, adamW);
        // On the CPU the token table's gradient comes as the rows the batch used, added into the
        // dense gradient in place: a table-sized temporary per step cost a fifth of backward in page
        // faults (docs/torchsharp.md, "Memory"). Untried on CUDA, which keeps index_select's.
        _sparseTokens = device.type == DeviceType.CPU && model.TokenEmbedding.requires_grad;
        model.SparseTokenGradient = _sparseTokens;
        _schedule = new LearningRateSchedule(options.LearningRate, options.WarmupSteps, totalSteps, options.MinLearningRate);
        _gradClip = options.GradClipNorm;
        _hooks = hooks ?? NoStepHooks.Instance;
    }

    public ClipModel Model { get; }

    public Device Device { get; }

    public optim.Optimizer Optimizer => _optimizer;

    /// <summary>Optimizer steps taken so far; the schedule and checkpoints key on it.</summary>
    public long StepsDone { get; set; }

    /// <summary>The phase of the step in progress (read by other threads for heartbeats); <see cref="TrainingPhase.Step"/> before the first.</summary>
    public TrainingPhase Phase => _phase;

    /// <summary>Takes one optimizer step on this rank's part of a global batch.</summary>
    /// <param name="batch">This rank's local batch.</param>
    /// <param name="dataSeconds">How long the caller waited for the batch (reported, not measured here).</param>
    public StepMetrics Step(Batch batch, double dataSeconds, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        Enter(TrainingPhase.Forward);
        Model.train();
        using var scope = torch.NewDisposeScope();
        double rate = _schedule.At(StepsDone);
        OptimizerFactory.SetLearningRate(_optimizer, rate);
        var clock = Stopwatch.StartNew();

        // Forward: [b, C, H, W] images and [b, L] tokens → [b, D] unit vectors.
        var images = BatchTensors.Images(batch, Device);
        var (tokens, lengths) = BatchTensors.Text(batch, Device);
        long b = images.shape[0];
        int micro = _step.MicroBatch > 0 && _step.MicroBatch < b ? _step.MicroBatch : 0;
        Tensor imageFeatures, textFeatures;
        BackwardCuts? cuts = micro == 0 && _segmentImage ? new BackwardCuts() : null;
        if (micro == 0)
        {
            (imageFeatures, textFeatures) = Encode(images, tokens, lengths, cuts);
        }
        else
        {
            // Only the features are kept: each micro-batch's activations go with its own scope.
            using var noGrad = torch.no_grad();
            imageFeatures = torch.empty(b, Model.Config.EmbedDim, device: Device); // [b, D]
            textFeatures = torch.empty(b, Model.Config.EmbedDim, device: Device);
            foreach (var (start, length) in Slices(b, micro))
            {
                using var microScope = torch.NewDisposeScope();
                var (microImages, microTexts) = Encode(images.narrow(0, start, length), tokens.narrow(0, start, length), lengths.narrow(0, start, length), null);
                imageFeatures.narrow(0, start, length).copy_(microImages);
                textFeatures.narrow(0, start, length).copy_(microTexts);
            }
        }

        double forward = Lap(clock);

        // The loss stage: this rank's share of the global B × B loss, and dL/d(its features) [b, D].
        Enter(TrainingPhase.Exchange);
        // A step that does not complete leaves no waits to report: its peers' next step may be another's.
        var previous = _previousWaits;
        _previousWaits = null;
        var loss = _loss.Compute(imageFeatures.detach(), textFeatures.detach(), Model.LogitScale, Model.LogitBias, previous, ct);
        double lossAndGather = Lap(clock);

        // Backward of the features' gradient through the towers, one tower after the other; the scalars
        // take the stage's partial sums. The text tower goes first and its gradients go on the wire
        // while the image tower's backward computes: the token embedding makes it the larger half.
        Enter(TrainingPhase.Backward);
        _optimizer.zero_grad();
        if (_sparseTokens && Model.TokenEmbedding.grad is null)
        {
            // The sparse lookup's rows are added into a dense gradient, which must exist (the first
            // step; zero_grad zeroes it in place after that).
            using var noGrad = torch.no_grad();
            using var zeros = torch.zeros_like(Model.TokenEmbedding);
            Model.TokenEmbedding.grad = zeros;
        }
        var scalars = new List<Tensor> { Model.LogitScale };
        var scalarGradients = new List<Tensor> { loss.ScaleGradient };
        if (Model.LogitBias is { } bias)
        {
            scalars.Add(bias);
            scalarGradients.Add(loss.BiasGradient!);
        }

        // The token table's gradient is zero outside the ids this batch holds: other ranks need only those rows.
        RowSparseGradient[]? rowSparse = null;
        if (_collectives.WorldSize > 1 && Model.TokenEmbedding.requires_grad)
        {
            using var ids = tokens.cpu();
            rowSparse = [new RowSparseGradient(Model.TokenEmbedding, ids.numel() == 0 ? [] : ids.data<long>().ToArray())];
        }

        using var reduction = _collectives.BeginGradientReduction(_stages, rowSparse, ct);
        if (micro == 0)
        {
            torch.autograd.backward([textFeatures, .. scalars], [loss.TextGradient, .. scalarGradients]);
            reduction.Release(0);
            if (cuts is null)
            {
                torch.autograd.backward([imageFeatures], [loss.ImageGradient]);
            }
            else
            {
                // Each segment but the last goes on the wire as its backward ends; the last after the fault hook below.
                cuts.Backward(imageFeatures, loss.ImageGradient, k =>
                {
                    if (1 + k < _stages.Length - 1)
                    {
                        reduction.Release(1 + k);
                    }
                });
            }
        }
        else
        {
            // Forward again with autograd, one micro-batch's activations at a time, a tower at a time.
            torch.autograd.backward(scalars, scalarGradients);
            foreach (var (start, length) in Slices(b, micro))
            {
                using var microScope = torch.NewDisposeScope();
                var microTexts = Features.Normalize(Model.EncodeText(tokens.narrow(0, start, length), lengths.narrow(0, start, length)));
                torch.autograd.backward([microTexts], [loss.TextGradient.narrow(0, start, length)]);
            }

            reduction.Release(0);
            foreach (var (start, length) in Slices(b, micro))
            {
                using var microScope = torch.NewDisposeScope();
                var microImages = Features.Normalize(Model.EncodeImage(images.narrow(0, start, length)));
                torch.autograd.backward([microImages], [loss.ImageGradient.narrow(0, start, length)]);
            }

            for (int stage = 1; stage < _stages.Length - 1; stage++)
            {
                reduction.Release(stage);
            }
        }

        if (_hooks.PoisonGradients(StepsDone + 1))
        {
            // A fault injected for a test: one NaN here makes the all-reduced sum NaN on every rank.
            using var grad = _stages[^1][0].grad!;
            grad.view(-1)[0] = float.NaN;
        }

        reduction.Release(_stages.Length - 1);
        double backward = Lap(clock);

        // What is left of the reduction after backward: the exposed communication.
        Enter(TrainingPhase.Reduce);
        reduction.Complete();
        double reduce = Lap(clock);

        Enter(TrainingPhase.Optimizer);
        // An infinite bound measures the norm without clipping. The fused AdamW applies the clipping
        // factor as it reads each gradient, sparing clip_grad_norm_'s pass over all of them.
        double bound = _gradClip > 0 ? _gradClip : double.PositiveInfinity;
        var fused = _optimizer as Optimization.Fused.AdamW;
        float clipFactor = 1f;
        double gradNorm;
        if (fused is not null)
        {
            (gradNorm, clipFactor) = GradientClipping.Measure(_parameters, bound);
        }
        else
        {
            gradNorm = torch.nn.utils.clip_grad_norm_(_parameters, bound);
        }

        // The norm is of the all-reduced gradients and the loss is the global one: both are the same on
        // every rank, so every rank skips the same steps. A skipped step leaves the weights and AdamW's
        // moments as they were (the NaN gradients that clipping scaled go at the next zero_grad); the
        // batch is consumed all the same.
        bool skipped = !double.IsFinite(gradNorm) || !double.IsFinite(loss.Loss);
        if (!skipped)
        {
            if (fused is not null)
            {
                fused.Step(clipFactor);
            }
            else
            {
                _optimizer.step();
            }

            Model.ClampLogitScale();
        }

        StepsDone++;
        double optimizer = Lap(clock);

        double logitScale = Model.LogitScale.item<float>();
        var waits = _collectives.WorldSize > 1 && previous is { } mine && loss.PreviousWaits is { } all && all.Count == _collectives.WorldSize
            ? WaitSplit.From(all, _collectives.Rank) is { } split ? split with { Step = mine.Step } : null
            : null;
        _previousWaits = new CollectiveWaits(StepsDone, loss.CommunicationSeconds, reduce);
        return new StepMetrics(StepsDone, loss.GlobalBatch, loss.Loss, rate, logitScale, gradNorm, loss.ImageToTextAccuracy, loss.TextToImageAccuracy,
            new PhaseTimes(dataSeconds, forward, loss.CommunicationSeconds, lossAndGather - loss.CommunicationSeconds, backward, reduce, optimizer), skipped)
        {
            PreviousWaits = waits,
        };
    }

    /// <summary>Marks the phase (for heartbeats) and lets the hooks step in at it, for the step being computed.</summary>
    private void Enter(TrainingPhase phase)
    {
        _phase = phase;
        _hooks.At(phase, StepsDone + 1);
    }

    /// <summary>[n, C, H, W] images and [n, L] tokens → [n, D] unit vectors each.</summary>
    private (Tensor Images, Tensor Texts) Encode(Tensor images, Tensor tokens, Tensor lengths, BackwardCuts? cuts) =>
        (Features.Normalize(Model.EncodeImage(images, cuts)), Features.Normalize(Model.EncodeText(tokens, lengths)));

    private static IEnumerable<(long Start, long Length)> Slices(long count, int size)
    {
        for (long start = 0; start < count; start += size)
        {
            yield return (start, Math.Min(size, count - start));
        }
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

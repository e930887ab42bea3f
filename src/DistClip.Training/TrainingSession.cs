using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using DistClip.Checkpoints;
using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Checkpointing;
using DistClip.Training.Evaluation;
using DistClip.Training.Steps;
using DistClip.Training.Telemetry;
using Microsoft.Extensions.Logging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using OptimizerState = DistClip.Training.Checkpointing.OptimizerState;
using PretrainedImport = DistClip.Model.Import.PretrainedImport;

namespace DistClip.Training;

/// <summary>
/// One rank's whole training: model, optimizer, data from a cursor, the step loop, checkpoints and
/// the final evaluation. The same code trains alone (<see cref="SingleProcessCollectives"/>) and as
/// rank r of N (real collectives); the state it checkpoints is identical on every rank.
/// </summary>
public sealed partial class TrainingSession : IDisposable
{
    /// <summary>Settings that may differ between a checkpoint and the run resuming it.</summary>

    private readonly TrainOptions _options;
    private readonly IStepCollectives _collectives;
    private readonly ILogger _logger;
    private readonly IImageTextDataset _train;
    private readonly IImageTextDataset? _heldOut;
    private readonly ITextTokenizer _tokenizer;
    private readonly ImageSpec _spec;
    private readonly GlobalBatchSampler _sampler;
    private readonly ClipTrainer _trainer;
    private readonly IStepHooks _hooks;
    private volatile TrainingPhase _phase = TrainingPhase.Loading;
    private readonly List<HistoryPoint> _history = [];
    private SamplerCursor _cursor = SamplerCursor.Start;
    private double _trainSeconds;
    private long _samples;
    private StepMetrics? _last;
    private long _skippedSteps;
    private readonly List<StepMetrics> _skippedInARow = [];
    private byte[] _dataOrder = new byte[32];

    // libtorch's generator as it was after the last completed step (null: untouched since the seed).
    private byte[]? _boundaryRng;

    // Steady-state timing: the first steps of a launch pay for warm-up (allocator, caches, links).
    private const int TimingWarmupSteps = 3;
    private readonly double[] _phaseSeconds = new double[PhaseTimes.Names.Length];
    private int _timedSteps;
    private long _timedSamples;
    private int _stepsThisLaunch;
    private long _firstTimedStep = long.MaxValue;
    private readonly double[] _waitSeconds = new double[RunSummary.WaitNames.Length]; // exposed communication, peer wait: sums over the timed steps split so far
    private int _waitSteps;

    /// <param name="hooks">Where a test steps into the loop (<see cref="Faults.FaultInjector"/>); none by default.</param>
    public TrainingSession(TrainOptions options, IStepCollectives collectives, ILogger logger, IStepHooks? hooks = null)
    {
        options.Validate(collectives.WorldSize);
        _options = options;
        _collectives = collectives;
        _logger = logger;
        _hooks = hooks ?? NoStepHooks.Instance;
        var config = ClipConfig.Load(options.Model);
        // The sigmoid loss learns a bias too, starting at SigLIP's temperature and bias.
        Config = options.Loss == LossKind.Siglip ? config.WithLogitBias() : config;
        _tokenizer = TokenizerSource.Open(options.Tokenizer);
        TokenizerSource.EnsureFits(_tokenizer, Config);
        _train = DatasetSource.OpenTrain(options.Dataset, logger);
        _heldOut = collectives.Rank == 0 ? DatasetSource.OpenEvaluation(options.Dataset) : null;
        if (options.GlobalBatch > _train.Count)
        {
            throw new ConfigException("global_batch", $"{options.GlobalBatch} is larger than the {_train.Count} samples of {_train.Name}");
        }

        NativeAllocator.Configure(); // before the model's first tensor (the worker has logged what it did)
        TorchRuntime.SetThreads(options.Threads);
        Device = TorchRuntime.SelectDevice(options.Device);
        torch.manual_seed(options.Seed);
        Model = new ClipModel(Config);
        if (options.Init is not null)
        {
            // Strict: a name or shape that does not match stops the run, naming it.
            var report = PretrainedImport.Load(Model, options.Init);
            LogInitialised(_logger, options.Init, report.Describe());
        }

        Model.to(Device);
        _spec = DatasetSource.ImageSpecFor(Config.Vision.Channels, Config.Vision.ImageSize);
        _sampler = new GlobalBatchSampler(_train.Count, options.GlobalBatch, collectives.WorldSize, options.Seed);
        _trainer = new ClipTrainer(Model, options.Optimizer, options.Steps, Device, collectives, StepSettings.Of(options), _hooks);
    }

    public ClipConfig Config { get; }

    public ClipModel Model { get; }

    public Device Device { get; }

    public long StepsDone => _trainer.StepsDone;

    /// <summary>The optimizer (for tests that look at its moments).</summary>
    internal optim.Optimizer Optimizer => _trainer.Optimizer;

    /// <summary>The sampler cursor of the next batch to train on.</summary>
    public SamplerCursor Cursor => _cursor;

    /// <summary>Where the current step is (for heartbeats, from any thread): inside a step, the trainer's phase.</summary>
    public TrainingPhase Phase
    {
        get => _phase == TrainingPhase.Step ? _trainer.Phase : _phase;
        private set => _phase = value;
    }

    /// <summary>The configuration a checkpoint records and a resume compares.</summary>
    public JsonElement CheckpointConfig() => TrainOptionsJson.CheckpointConfig(_options, _collectives.WorldSize);

    /// <summary>Steps skipped so far because their global gradient norm or loss was not finite (resumed from the checkpoint).</summary>
    public long SkippedSteps => _skippedSteps;

    /// <summary>
    /// Trains from the current step to <see cref="TrainOptions.Steps"/> (or <see cref="TrainOptions.StopAtStep"/>),
    /// calling <paramref name="afterStep"/> after every optimizer step (checkpoints, progress).
    /// </summary>
    public void Train(Action<StepMetrics>? afterStep, CancellationToken ct)
    {
        long end = _options.StopAtStep > 0 ? _options.StopAtStep : _options.Steps;
        if (StepsDone >= end)
        {
            return;
        }

        _boundaryRng ??= RngState.Capture();
        Phase = TrainingPhase.Data;
        using var loader = new ClipDataLoader(_train, _spec, _tokenizer, Config.Text.ContextLength, _sampler, _collectives.Rank, _cursor,
            new DataLoaderOptions(_options.DecodeThreads, _options.Prefetch));
        while (StepsDone < end)
        {
            Phase = TrainingPhase.Data;
            _hooks.At(TrainingPhase.Data, StepsDone + 1);
            var batch = loader.Next(ct);
            while (batch.Count == 0 && _collectives.WorldSize == 1)
            {
                // Every sample of this batch was skipped (and counted); a step needs at least one pair.
                // With several ranks the others' samples still make a global batch.
                batch = loader.Next(ct);
            }

            // The cursor and the data order move only with a completed step: a step cut off by a
            // lost peer leaves the whole state as it was (CaptureReplicaState).
            var next = loader.NextCursor;
            var order = ChainDataOrder(_dataOrder, _sampler.GlobalBatch(batch.Cursor));
            Phase = TrainingPhase.Step;
            var metrics = _trainer.Step(batch, loader.LastWait.TotalSeconds, ct);
            _cursor = next;
            _dataOrder = order;
            _boundaryRng = RngState.Capture();
            TrainingMetrics.RecordStep(metrics, batch.Count, Config.MaxLogitScale);
            CountSkipped(metrics);
            _trainSeconds += metrics.Times.Total;
            _samples += metrics.Samples;
            if (++_stepsThisLaunch > TimingWarmupSteps)
            {
                double[] t = metrics.Times.ToArray();
                for (int i = 0; i < t.Length; i++)
                {
                    _phaseSeconds[i] += t[i];
                }

                _timedSteps++;
                _timedSamples += metrics.Samples;
                _firstTimedStep = Math.Min(_firstTimedStep, metrics.Step);
            }

            // A step's waits are split in the next one (StepMetrics.PreviousWaits): only timed steps count.
            if (metrics.PreviousWaits is { } waits && waits.Step >= _firstTimedStep)
            {
                _waitSeconds[0] += waits.ExposedCommunication;
                _waitSeconds[1] += waits.PeerWait;
                _waitSteps++;
            }

            _last = metrics;
            bool evaluate = _heldOut is not null && _options.EvalEvery > 0 && metrics.Step % _options.EvalEvery == 0 && metrics.Step < _options.Steps;
            double? top1 = evaluate ? Evaluate().ZeroShot.Top1 : null;
            if (metrics.Step % _options.LogEvery == 0 || top1 is not null)
            {
                _history.Add(new HistoryPoint(metrics.Step, metrics.Loss, metrics.LearningRate, _samples / _trainSeconds, top1));
            }

            afterStep?.Invoke(metrics);
        }

        Phase = TrainingPhase.Finished;
    }

    /// <summary>
    /// Counts a skipped step and stops the run when more than <see cref="TrainOptions.MaxSkippedSteps"/>
    /// come in a row. The values are global, so every rank counts and stops alike.
    /// </summary>
    private void CountSkipped(StepMetrics metrics)
    {
        if (!metrics.Skipped)
        {
            _skippedInARow.Clear();
            return;
        }

        _skippedSteps++;
        _skippedInARow.Add(metrics);
        LogSkipped(_logger, metrics.Step, metrics.GradNorm, metrics.Loss, _skippedInARow.Count, _options.MaxSkippedSteps);
        if (_skippedInARow.Count > _options.MaxSkippedSteps)
        {
            throw new TrainingDivergedException([.. _skippedInARow], _options.MaxSkippedSteps);
        }
    }

    /// <summary>
    /// h ← SHA-256(h ‖ the global batch's indices): one value that changes if any sample or its
    /// position differs, the same on every rank (so any survivor can hand it over).
    /// </summary>
    private static byte[] ChainDataOrder(byte[] previous, int[] indices)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(previous);
        hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(indices.AsSpan()));
        return hash.GetHashAndReset();
    }

    /// <summary>Zero-shot accuracy and retrieval recall on the held-out split (rank 0 only).</summary>
    public EvaluationResult Evaluate()
    {
        if (_heldOut is null)
        {
            throw new InvalidOperationException("only rank 0 of a labelled dataset evaluates");
        }

        var previous = _phase;
        _phase = TrainingPhase.Evaluate;
        try
        {
            var result = new Evaluator(_heldOut, _tokenizer, _spec, _options.EvalSamples, _options.RetrievalSamples).Evaluate(Model, Device);
            LogEvaluation(_logger, StepsDone, result.ZeroShot.Top1);
            return result;
        }
        finally
        {
            _phase = previous;
        }
    }

    /// <summary>The run's summary as this rank sees it (rank 0's is the run's), with a final evaluation when there is a held-out set.</summary>
    public RunSummary Summarize(double wallSeconds)
    {
        EvaluationResult? final = _heldOut is null ? null : Evaluate();
        double rate = _trainSeconds > 0 ? _samples / _trainSeconds : 0;
        var history = new List<HistoryPoint>(_history);
        if (_last is not null || final is not null)
        {
            history.Add(new HistoryPoint(StepsDone, _last?.Loss ?? _history.LastOrDefault()?.Loss ?? double.NaN,
                _last?.LearningRate ?? _history.LastOrDefault()?.LearningRate ?? 0, rate, final?.ZeroShot.Top1));
        }

        return new RunSummary
        {
            Model = Config.Name,
            Dataset = _train.Name,
            Steps = StepsDone,
            GlobalBatch = _options.GlobalBatch,
            WorldSize = _collectives.WorldSize,
            Loss = _options.Loss == LossKind.Siglip ? "siglip" : "softmax",
            MicroBatch = _options.MicroBatch,
            SamplesPerSecond = rate,
            WallSeconds = wallSeconds,
            FinalLoss = _last?.Loss ?? _history.LastOrDefault()?.Loss ?? double.NaN,
            ZeroShotTop1 = final?.ZeroShot.Top1,
            ZeroShotTop5 = final?.ZeroShot.Top5,
            ZeroShotSamples = final?.ZeroShot.Samples,
            RecallAt1 = final?.Retrieval is { } r1 ? new RecallPair(r1.ImageToTextR1, r1.TextToImageR1) : null,
            RecallAt5 = final?.Retrieval is { } r5 ? new RecallPair(r5.ImageToTextR5, r5.TextToImageR5) : null,
            RecallAt10 = final?.Retrieval is { } r10 ? new RecallPair(r10.ImageToTextR10, r10.TextToImageR10) : null,
            DataOrderSha256 = Convert.ToHexString(_dataOrder).ToLowerInvariant(),
            SteadySamplesPerSecond = _timedSteps == 0 ? null : _timedSamples / _phaseSeconds.Sum(),
            PhaseSeconds = MeanPhaseSeconds(),
            WaitSeconds = MeanWaitSeconds(),
            SkippedSteps = _skippedSteps,
            SkippedSamples = _train.Skips.Total,
            SkippedByReason = _train.Skips.Snapshot().ToDictionary(kv => kv.Key.ToString(), kv => kv.Value),
            History = history,
        };
    }

    /// <summary>This rank's mean seconds per step in each phase after the first steps; null before any was timed.</summary>
    public Dictionary<string, double>? MeanPhaseSeconds() =>
        _timedSteps == 0 ? null : PhaseTimes.Names.Zip(_phaseSeconds).ToDictionary(p => p.First, p => p.Second / _timedSteps);

    /// <summary>
    /// This rank's mean seconds per step of exposed communication and of waiting for slower ranks
    /// (<see cref="WaitSplit"/>) over the timed steps; null with one rank or before any was split.
    /// </summary>
    public Dictionary<string, double>? MeanWaitSeconds() =>
        _waitSteps == 0 ? null : RunSummary.WaitNames.Zip(_waitSeconds).ToDictionary(p => p.First, p => p.Second / _waitSteps);

    /// <summary>SHA-256 over every parameter's bytes in order: equal on all ranks iff the replicas are bit-identical.</summary>
    public string ParametersSha256()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (_, p) in Model.named_parameters())
        {
            using var cpu = p.detach().cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }

        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    public void Dispose()
    {
        _trainer.Dispose();
        Model.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Initialised from {Path}: {Report}")]
    private static partial void LogInitialised(ILogger logger, string path, string report);

    [LoggerMessage(Level = LogLevel.Information, Message = "Resumed at step {Step} from {Directory}")]
    private static partial void LogResumed(ILogger logger, long step, string directory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Took over a replica's state at step {Step}")]
    private static partial void LogTookOver(ILogger logger, long step);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Step {Step} skipped: gradient norm {GradNorm}, loss {Loss} (not finite; no update on any rank); {InARow} in a row, max_skipped_steps {Max}")]
    private static partial void LogSkipped(ILogger logger, long step, double gradNorm, double loss, int inARow, int max);

    [LoggerMessage(Level = LogLevel.Information, Message = "Step {Step}: zero-shot top-1 {Top1:P1}")]
    private static partial void LogEvaluation(ILogger logger, long step, double top1);
}

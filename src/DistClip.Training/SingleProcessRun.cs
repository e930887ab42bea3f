using System.Diagnostics;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Evaluation;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace DistClip.Training;

/// <summary>
/// Trains one model in this process on the whole global batch, evaluates it and returns the
/// summary. The distributed worker runs the same <see cref="ClipTrainer"/> step with real
/// collectives; this is the world-size-1 case and the reference the equivalence tests compare to.
/// </summary>
public static partial class SingleProcessRun
{
    public static RunSummary Run(TrainOptions options, ILogger logger, IProgress<StepMetrics>? progress, CancellationToken ct)
    {
        options.Validate(worldSize: 1);
        var config = ClipConfig.Load(options.Model);
        var tokenizer = ClipTokenizer.CreateR50k();
        tokenizer.EnsureModelVocabulary(config.Text.VocabSize);
        var train = DatasetSource.OpenTrain(options.Dataset, logger);
        var heldOut = DatasetSource.OpenEvaluation(options.Dataset);
        if (options.GlobalBatch > train.Count)
        {
            throw new ConfigException("global_batch", $"{options.GlobalBatch} is larger than the {train.Count} samples of {train.Name}");
        }

        TorchRuntime.SetThreads(options.Threads);
        var device = TorchRuntime.SelectDevice(options.Device);
        torch.manual_seed(options.Seed);
        using var model = new ClipModel(config);
        model.to(device);
        var spec = DatasetSource.ImageSpecFor(config.Vision.Channels, config.Vision.ImageSize);
        int context = config.Text.ContextLength;
        LogStart(logger, config.Name, model.ParameterCount(), train.Name, train.Count, options.GlobalBatch, options.Steps, device.ToString());

        var sampler = new GlobalBatchSampler(train.Count, options.GlobalBatch, worldSize: 1, options.Seed);
        using var loader = new ClipDataLoader(train, spec, tokenizer, context, sampler, rank: 0, new SamplerCursor(0, 0),
            new DataLoaderOptions(options.DecodeThreads, options.Prefetch));
        using var trainer = new ClipTrainer(model, options.Optimizer, options.Steps, device);
        var evaluator = heldOut is null ? null : new Evaluator(heldOut, tokenizer, spec, options.EvalSamples, options.RetrievalSamples);

        var history = new List<HistoryPoint>();
        var wall = Stopwatch.StartNew();
        double trainSeconds = 0;
        long samples = 0;
        StepMetrics? last = null;
        for (int step = 0; step < options.Steps; step++)
        {
            var batch = loader.Next(ct);
            double wait = loader.LastWait.TotalSeconds;
            while (batch.Count == 0)
            {
                // Every sample of this batch was skipped (and counted); a step needs at least one pair.
                batch = loader.Next(ct);
                wait += loader.LastWait.TotalSeconds;
            }

            var metrics = trainer.Step(batch, wait, ct);
            trainSeconds += metrics.Times.Total;
            samples += metrics.Samples;
            last = metrics;
            progress?.Report(metrics);

            bool evalNow = evaluator is not null && options.EvalEvery > 0 && metrics.Step % options.EvalEvery == 0 && metrics.Step < options.Steps;
            if (metrics.Step % options.LogEvery == 0 || evalNow)
            {
                double? top1 = null;
                if (evalNow)
                {
                    top1 = evaluator!.Evaluate(model, device).ZeroShot.Top1;
                    LogEvaluation(logger, metrics.Step, top1.Value);
                }

                history.Add(new HistoryPoint(metrics.Step, metrics.Loss, metrics.LearningRate, samples / trainSeconds, top1));
            }
        }

        EvaluationResult? final = evaluator?.Evaluate(model, device);
        if (final is not null)
        {
            LogEvaluation(logger, options.Steps, final.ZeroShot.Top1);
        }

        history.Add(new HistoryPoint(options.Steps, last!.Loss, last.LearningRate, samples / trainSeconds, final?.ZeroShot.Top1));
        var skips = train.Skips.Snapshot();
        return new RunSummary
        {
            Model = config.Name,
            Dataset = train.Name,
            Steps = trainer.StepsDone,
            GlobalBatch = options.GlobalBatch,
            WorldSize = 1,
            SamplesPerSecond = samples / trainSeconds,
            WallSeconds = wall.Elapsed.TotalSeconds,
            FinalLoss = last.Loss,
            ZeroShotTop1 = final?.ZeroShot.Top1,
            ZeroShotTop5 = final?.ZeroShot.Top5,
            ZeroShotSamples = final?.ZeroShot.Samples,
            RecallAt1 = final?.Retrieval is { } r1 ? new RecallPair(r1.ImageToTextR1, r1.TextToImageR1) : null,
            RecallAt5 = final?.Retrieval is { } r5 ? new RecallPair(r5.ImageToTextR5, r5.TextToImageR5) : null,
            RecallAt10 = final?.Retrieval is { } r10 ? new RecallPair(r10.ImageToTextR10, r10.TextToImageR10) : null,
            SkippedSamples = train.Skips.Total,
            SkippedByReason = skips.ToDictionary(kv => kv.Key.ToString(), kv => kv.Value),
            History = history,
        };
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Training {Model} ({Parameters} parameters) on {Dataset} ({Samples} samples): global batch {GlobalBatch}, {Steps} steps, device {Device}")]
    private static partial void LogStart(ILogger logger, string model, long parameters, string dataset, int samples, int globalBatch, int steps, string device);

    [LoggerMessage(Level = LogLevel.Information, Message = "Step {Step}: zero-shot top-1 {Top1:P1}")]
    private static partial void LogEvaluation(ILogger logger, long step, double top1);
}

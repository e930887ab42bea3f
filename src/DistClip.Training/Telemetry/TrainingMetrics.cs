using System.Diagnostics;
using System.Diagnostics.Metrics;
using DistClip.Training.Steps;

namespace DistClip.Training.Telemetry;

/// <summary>
/// Instruments under the <c>DistClip.Training</c> meter, recorded once per optimizer step by the
/// process that takes it; the program chooses the exporter. Which rank a series belongs to is the
/// scrape target's label (each worker is its own endpoint), so no instrument carries a rank, and
/// none carries a step number (a new series per step would be unbounded).
/// </summary>
public static class TrainingMetrics
{
    public const string MeterName = "DistClip.Training";

    /// <summary>Seconds-long steps on a CPU, milliseconds on a GPU: one set of buckets covers both, and the phases.</summary>
    public static readonly IReadOnlyList<double> DurationBuckets =
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

    private static readonly Meter Meter = new(MeterName);

    private static readonly Histogram<double> StepDuration = Meter.CreateHistogram(
        "distclip.train.step.duration", unit: "s", description: "Wall time of one optimizer step on this rank, data wait included.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });

    private static readonly Histogram<double> PhaseDuration = Meter.CreateHistogram(
        "distclip.train.step.phase.duration", unit: "s", description: "Time one step spent in each phase on this rank (the phases add up to the step).",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });

    private static readonly Histogram<double> WaitDuration = Meter.CreateHistogram(
        "distclip.train.step.wait.duration", unit: "s",
        description: "A step's all_gather and all_reduce waits on this rank split by cause: exposed_communication, what the communication " +
            "itself added to the step (the same on every rank), and peer_wait, the rest, spent waiting for slower ranks. Recorded a step late.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });

    private static readonly Counter<long> Samples = Meter.CreateCounter<long>(
        "distclip.train.samples", unit: "{sample}", description: "Samples this rank trained on (its part of each global batch).");

    private static readonly Gauge<double> Loss = Meter.CreateGauge<double>(
        "distclip.train.loss", unit: "1", description: "Contrastive loss of the last step over the global batch.");

    private static readonly Gauge<double> LearningRate = Meter.CreateGauge<double>(
        "distclip.train.learning_rate", unit: "1", description: "Learning rate of the last step.");

    private static readonly Gauge<double> Temperature = Meter.CreateGauge<double>(
        "distclip.train.temperature", unit: "1", description: "Softmax temperature exp(-t) after the last step (the logits are cos / temperature).");

    private static readonly Counter<long> TemperatureClamped = Meter.CreateCounter<long>(
        "distclip.train.temperature.clamped", unit: "{step}", description: "Steps that ended with the temperature at its lower clamp (logit scale at its maximum).");

    private static readonly Counter<long> SkippedSteps = Meter.CreateCounter<long>(
        "distclip.train.skipped_steps", unit: "{step}", description: "Steps whose global gradient norm or loss was not finite, so no update was applied (the same on every rank).");

    private static readonly Gauge<double> GradNorm = Meter.CreateGauge<double>(
        "distclip.train.grad_norm", unit: "1", description: "Global gradient norm of the last step, before clipping.");

    private static readonly Gauge<double> InBatchAccuracy = Meter.CreateGauge<double>(
        "distclip.train.in_batch_accuracy", unit: "1", description: "Top-1 accuracy of the last step's global logits: image rows (image_to_text) or text columns (text_to_image).");

    private static readonly KeyValuePair<string, object?>[][] PhaseTags =
        [.. PhaseTimes.Names.Select(n => new[] { new KeyValuePair<string, object?>("phase", n) })];

    private static readonly KeyValuePair<string, object?>[] ExposedCommunication = [new("kind", "exposed_communication")];
    private static readonly KeyValuePair<string, object?>[] PeerWait = [new("kind", "peer_wait")];

    private static readonly KeyValuePair<string, object?> ImageToText = new("direction", "image_to_text");
    private static readonly KeyValuePair<string, object?> TextToImage = new("direction", "text_to_image");

    /// <summary>Records one step of this rank.</summary>
    /// <param name="metrics">What the step produced.</param>
    /// <param name="localSamples">Samples of this rank's local batch.</param>
    /// <param name="maxLogitScale">The clamp on t (the model's <c>max_logit_scale</c>).</param>
    public static void RecordStep(StepMetrics metrics, int localSamples, double maxLogitScale)
    {
        double[] phases = metrics.Times.ToArray();
        for (int i = 0; i < phases.Length; i++)
        {
            PhaseDuration.Record(phases[i], PhaseTags[i]);
        }

        StepDuration.Record(metrics.Times.Total);
        if (metrics.PreviousWaits is { } waits)
        {
            WaitDuration.Record(waits.ExposedCommunication, ExposedCommunication);
            WaitDuration.Record(waits.PeerWait, PeerWait);
        }

        Samples.Add(localSamples);
        Loss.Record(metrics.Loss);
        LearningRate.Record(metrics.LearningRate);
        Temperature.Record(Math.Exp(-metrics.LogitScale));
        // t is float32 on the device; compare with float precision. Adding 0 keeps the series
        // present (at 0) from the first step, so "never clamped" is a value, not a missing series.
        TemperatureClamped.Add(metrics.LogitScale >= (float)maxLogitScale ? 1 : 0);
        // Adding 0 keeps the series present from the first step, as for the clamp.
        SkippedSteps.Add(metrics.Skipped ? 1 : 0);
        GradNorm.Record(metrics.GradNorm);
        InBatchAccuracy.Record(metrics.ImageToTextAccuracy, ImageToText);
        InBatchAccuracy.Record(metrics.TextToImageAccuracy, TextToImage);
    }
}

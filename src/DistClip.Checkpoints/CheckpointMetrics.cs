using System.Diagnostics.Metrics;

namespace DistClip.Checkpoints;

/// <summary>
/// Instruments under the <c>DistClip.Checkpoints</c> meter, recorded by the process that commits
/// (rank 0); the program chooses the exporter.
/// </summary>
internal static class CheckpointMetrics
{
    public const string MeterName = "DistClip.Checkpoints";

    private static readonly Meter Meter = new(MeterName);

    private static readonly Histogram<double> Duration = Meter.CreateHistogram(
        "distclip.checkpoint.duration", unit: "s", description: "Wall time of one checkpoint commit: files, fsyncs, rename and pruning.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600] });

    private static readonly Gauge<long> Size = Meter.CreateGauge<long>(
        "distclip.checkpoint.size", unit: "By", description: "Bytes of the last committed checkpoint, MANIFEST included.");

    private static readonly Gauge<double> LastSuccess = Meter.CreateGauge<double>(
        "distclip.checkpoint.last_success.timestamp", unit: "s", description: "Unix time at which the last checkpoint was committed.");

    private static readonly Counter<long> Failures = Meter.CreateCounter<long>(
        "distclip.checkpoint.failures", unit: "{checkpoint}", description: "Checkpoints that could not be written (disk full, read-only storage); the previous one stays.");

    /// <summary>Makes the failure series exist at 0, so "never failed" is a value rather than no data.</summary>
    public static void Announce() => Failures.Add(0);

    public static void RecordFailure() => Failures.Add(1);

    public static void RecordCommit(long bytes, TimeSpan duration, DateTimeOffset committedAt)
    {
        Duration.Record(duration.TotalSeconds);
        Size.Record(bytes);
        LastSuccess.Record(committedAt.ToUnixTimeMilliseconds() / 1000.0);
    }
}

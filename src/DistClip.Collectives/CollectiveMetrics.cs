using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace DistClip.Collectives;

/// <summary>Instruments under the <c>DistClip.Collectives</c> meter; programs choose the exporter.</summary>
internal static class CollectiveMetrics
{
    public const string MeterName = "DistClip.Collectives";

    private static readonly Meter Meter = new(MeterName);

    private static readonly Counter<long> BytesSent = Meter.CreateCounter<long>(
        "distclip.collective.bytes", unit: "By", description: "Payload bytes this rank sent to its right neighbour.");

    private static readonly Histogram<double> Duration = Meter.CreateHistogram(
        "distclip.collective.duration", unit: "s", description: "Time of one collective operation on this rank.",
        advice: new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        });

    // Label values as the training step's phases spell them (all_gather, all_reduce), so one
    // dashboard query can set a phase beside the collective behind it.
    private static readonly Dictionary<CollectiveOperation, string> OperationNames = Enum.GetValues<CollectiveOperation>()
        .ToDictionary(o => o, o => string.Concat(o.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString())));

    public static void Record(CollectiveOperation operation, bool succeeded, long bytesSent, TimeSpan elapsed)
    {
        var tags = new TagList
        {
            { "operation", OperationNames.GetValueOrDefault(operation, "unspecified") },
            { "outcome", succeeded ? "ok" : "error" },
        };
        BytesSent.Add(bytesSent, tags);
        Duration.Record(elapsed.TotalSeconds, tags);
    }
}

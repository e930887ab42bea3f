using System.Diagnostics.Metrics;

namespace DistClip.Data;

/// <summary>Instruments under the <c>DistClip.Data</c> meter; the program chooses the exporter.</summary>
internal static class DataMetrics
{
    public const string MeterName = "DistClip.Data";

    private static readonly Meter Meter = new(MeterName);

    private static readonly Counter<long> Skipped = Meter.CreateCounter<long>(
        "distclip.data.skipped", unit: "{sample}", description: "Samples left out of training, by reason (undecodable image, missing caption, ...).");

    // reason="undecodable_image" for SkipReason.UndecodableImage: the label values stay snake_case like every other.
    private static readonly KeyValuePair<string, object?>[] ReasonTags = [.. Enum.GetValues<SkipReason>()
        .Select(r => new KeyValuePair<string, object?>("reason", string.Concat(r.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()))))];

    /// <summary>Makes every reason's series exist at 0, so a clean dataset reads as "no skips" rather than as no data.</summary>
    public static void Announce()
    {
        foreach (var tag in ReasonTags)
        {
            Skipped.Add(0, tag);
        }
    }

    public static void RecordSkip(SkipReason reason) => Skipped.Add(1, ReasonTags[(int)reason]);
}

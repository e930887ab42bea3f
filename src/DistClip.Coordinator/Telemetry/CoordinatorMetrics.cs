using System.Diagnostics.Metrics;
using System.Globalization;
using DistClip.Coordinator.Runs;

namespace DistClip.Coordinator.Telemetry;

/// <summary>
/// The run's health under the <c>DistClip.Coordinator</c> meter, observed when Prometheus scrapes:
/// workers up, generation, restarts and each rank's heartbeat age. Training series come from the
/// workers themselves.
/// </summary>
internal sealed class CoordinatorMetrics : IDisposable
{
    public const string MeterName = "DistClip.Coordinator";

    private readonly Meter _meter;

    public CoordinatorMetrics(IMeterFactory meters, Membership run)
    {
        _meter = meters.Create(MeterName);
        _meter.CreateObservableGauge("distclip.coordinator.workers.up", () => run.Health().WorkersUp,
            unit: "{worker}", description: "Workers in touch with the coordinator: members of the current generation and those joining the next.");
        _meter.CreateObservableGauge("distclip.coordinator.workers.expected", () => run.Health().WorldSize,
            unit: "{worker}", description: "Workers the run needs (its world size).");
        _meter.CreateObservableGauge("distclip.coordinator.generation", () => run.Health().Generation,
            unit: "1", description: "The current generation; it grows each time the workers regroup after a loss.");
        _meter.CreateObservableCounter("distclip.coordinator.restarts", () => (long)run.Health().Restarts,
            unit: "{restart}", description: "Workers lost (and replaced) since the run started.");
        _meter.CreateObservableGauge("distclip.coordinator.heartbeat.age", () => HeartbeatAges(run),
            unit: "s", description: "Seconds since each rank's last heartbeat.");
    }

    private static IEnumerable<Measurement<double>> HeartbeatAges(Membership run)
    {
        var ages = run.Health().HeartbeatAgeSeconds;
        for (int rank = 0; rank < ages.Count; rank++)
        {
            yield return new Measurement<double>(ages[rank], new KeyValuePair<string, object?>("rank", rank.ToString(CultureInfo.InvariantCulture)));
        }
    }

    public void Dispose() => _meter.Dispose();
}

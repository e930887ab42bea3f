using System.Text.Json;
using System.Text.Json.Serialization;
using DistClip.Control.V1;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Telemetry;

/// <summary>
/// <c>&lt;run dir&gt;/prometheus-targets.json</c>: every metrics endpoint of the run in Prometheus'
/// file-based service discovery format, so one scrape configuration (<c>file_sd_configs</c>) finds
/// the coordinator and each worker, whatever ports they took:
/// <code>
/// [ { "targets": ["127.0.0.1:40123"], "labels": { "role": "coordinator", "run_id": "..." } },
///   { "targets": ["127.0.0.1:40511"], "labels": { "role": "worker", "rank": "0", "run_id": "..." } }, ... ]
/// </code>
/// Rewritten whenever a worker is given a rank (a replacement takes its rank's entry) and emptied when
/// the run is over; always replaced by rename, so Prometheus never reads half a file.
/// </summary>
internal sealed partial class PrometheusTargets
{
    public const string FileName = "prometheus-targets.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly string _path;
    private readonly string _runId;
    private readonly string? _coordinator;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly SortedDictionary<int, (long Generation, string Target)> _workers = [];

    /// <param name="coordinatorTarget"><c>host:port</c> of the coordinator's own endpoint; null when it exports none.</param>
    public PrometheusTargets(string runDirectory, string runId, string? coordinatorTarget, ILogger logger)
    {
        _path = Path.Combine(runDirectory, FileName);
        _runId = runId;
        _coordinator = coordinatorTarget;
        _logger = logger;
        lock (_lock)
        {
            Write();
        }
    }

    /// <summary>The coordinator process's own metrics target (<c>host:port</c>), set by Program when it starts exporting.</summary>
    public static string? CoordinatorTarget { get; set; }

    public string FilePath => _path;

    /// <summary>A worker was given <paramref name="assignment"/>: its endpoint now scrapes as that rank.</summary>
    public void Assigned(JoinRequest request, Assignment assignment)
    {
        if (assignment.Stop || !Uri.TryCreate(request.MetricsEndpoint, UriKind.Absolute, out var endpoint))
        {
            return;
        }

        lock (_lock)
        {
            // Ranks of an older generation are gone or have joined again; keep a rank's newest endpoint.
            foreach (int stale in _workers.Where(w => w.Value.Generation < assignment.Generation).Select(w => w.Key).ToList())
            {
                _workers.Remove(stale);
            }

            _workers[assignment.Rank] = (assignment.Generation, endpoint.Authority);
            Write();
        }
    }

    /// <summary>The run is over: no endpoint is left to scrape.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _workers.Clear();
            Write(empty: true);
        }
    }

    private void Write(bool empty = false)
    {
        var groups = new List<TargetGroup>();
        if (!empty && _coordinator is not null)
        {
            groups.Add(new TargetGroup([_coordinator], new() { ["role"] = "coordinator", ["run_id"] = _runId }));
        }

        foreach (var (rank, (_, target)) in _workers)
        {
            groups.Add(new TargetGroup([target], new()
            {
                ["role"] = "worker",
                ["rank"] = rank.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["run_id"] = _runId,
            }));
        }

        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
            string tmp = _path + ".tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(groups, Json));
            File.Move(tmp, _path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Metrics discovery must never stop a run.
            LogWriteFailed(_logger, _path, e.Message);
        }
    }

    private sealed record TargetGroup(
        [property: JsonPropertyName("targets")] string[] Targets,
        [property: JsonPropertyName("labels")] Dictionary<string, string> Labels);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not write the Prometheus targets file {Path}: {Error}")]
    private static partial void LogWriteFailed(ILogger logger, string path, string error);
}

using System.Reflection;
using System.Text.Json;

namespace DistClip.Observability.Tests;

/// <summary>
/// One real run observed by one real Prometheus, shared by the tests of <see cref="ObservedRunTests"/>:
/// Prometheus starts on 127.0.0.1 with the README's file_sd configuration, then a 2-worker
/// <c>coordinator launch</c> (the built coordinator.dll) trains; after its first checkpoint every
/// endpoint's /metrics is read as Prometheus would; the run ends on its own; Prometheus keeps what
/// it scraped until the tests are done and is then stopped by its process id.
/// </summary>
public sealed class ObservedRun : IAsyncLifetime
{
    public const string RunId = "observed";

    /// <summary>Every process of the run: the coordinator and two workers.</summary>
    public const int Endpoints = 3;

    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(3);

    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-observed-").FullName;
    private PrometheusServer? _prometheus;
    private ChildProcess? _coordinator;

    public string RunDirectory => Path.Combine(_dir, "runs", RunId);

    public string TargetsFile => Path.Combine(RunDirectory, "prometheus-targets.json");

    internal PrometheusServer Prometheus => _prometheus ?? throw new InvalidOperationException("not started");

    public int ExitCode { get; private set; }

    public string Output { get; private set; } = "";

    /// <summary>The targets file as it stood after the first checkpoint.</summary>
    public string TargetsDuringRun { get; private set; } = "";

    /// <summary>Each endpoint's /metrics text (Prometheus text format 0.0.4) after the first checkpoint, by <c>host:port</c>.</summary>
    public IReadOnlyDictionary<string, string> Scrapes { get; private set; } = new Dictionary<string, string>();

    /// <summary>The last moment at which Prometheus saw every endpoint of the run up.</summary>
    public DateTimeOffset AllUp { get; private set; }

    public static string CoordinatorDll
    {
        get
        {
            string configuration = typeof(ObservedRun).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
            string? dir = AppContext.BaseDirectory;
            while (dir is not null && !File.Exists(Path.Combine(dir, "DistClip.sln")))
            {
                dir = Path.GetDirectoryName(dir);
            }

            return Path.Combine(dir ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory),
                "src", "DistClip.Coordinator", "bin", configuration, "net10.0", "coordinator.dll");
        }
    }

    internal static ChildProcess StartCoordinator(params string[] args) =>
        ChildProcess.Start("dotnet", [CoordinatorDll, .. args], new Dictionary<string, string> { ["OMP_WAIT_POLICY"] = "PASSIVE" });

    public async Task InitializeAsync()
    {
        var started = DateTimeOffset.UtcNow;
        // The run directory exists before the run, so Prometheus watches it from the start and sees the file appear.
        Directory.CreateDirectory(RunDirectory);
        _prometheus = await PrometheusServer.StartAsync(_dir, TargetsFile, TimeSpan.FromSeconds(60));
        _coordinator = StartCoordinator(
            "launch", "--run-id", RunId, "--run-dir", RunDirectory, "--checkpoint-dir", Path.Combine(_dir, "checkpoints"),
            "--workers", "2", "--steps", "200", "--checkpoint-every", "50", "--eval-samples", "1000", "--retrieval-samples", "200");

        // After the first checkpoint every instrument has been recorded at least once.
        await _coordinator.WaitForLineAsync("checkpoint of step 50 committed", RunDeadline);
        TargetsDuringRun = await File.ReadAllTextAsync(TargetsFile);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var scrapes = new Dictionary<string, string>();
        foreach (string target in TargetsOf(TargetsDuringRun).Select(t => t.Target))
        {
            scrapes[target] = await http.GetStringAsync($"http://{target}/metrics");
        }

        Scrapes = scrapes;
        ExitCode = await _coordinator.WaitForExitAsync(RunDeadline);
        Output = _coordinator.Output;
        if (ExitCode != 0)
        {
            throw new InvalidOperationException($"the observed run failed with status {ExitCode}:\n{Output}");
        }

        // Prometheus has every sample it will get (the run is over and its targets file empty); find
        // the last second at which all of the run's endpoints were up.
        var up = await Prometheus.QueryRangeAsync($"count(up{{job=\"distclip\", run_id=\"{RunId}\"}} == 1)", started, DateTimeOffset.UtcNow, CancellationToken.None);
        var allUp = up.SelectMany(series => series).Where(p => p.Value == Endpoints).Select(p => p.Time).ToList();
        AllUp = allUp.Count > 0
            ? allUp.Max()
            : throw new InvalidOperationException($"Prometheus never saw all {Endpoints} endpoints of the run up at once:\n{Output}");
    }

    /// <summary>The (target, labels) pairs of a Prometheus file_sd document.</summary>
    public static IReadOnlyList<(string Target, IReadOnlyDictionary<string, string> Labels)> TargetsOf(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.EnumerateArray().SelectMany(group =>
        {
            var labels = group.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            return group.GetProperty("targets").EnumerateArray().Select(t => (t.GetString()!, (IReadOnlyDictionary<string, string>)labels));
        })];
    }

    public async Task DisposeAsync()
    {
        if (_coordinator is not null)
        {
            await _coordinator.DisposeAsync();
        }

        if (_prometheus is not null)
        {
            await _prometheus.DisposeAsync();
        }

        Directory.Delete(_dir, recursive: true);
    }
}

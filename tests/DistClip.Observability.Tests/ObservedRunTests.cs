using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace DistClip.Observability.Tests;

/// <summary>What a real Prometheus sees of a real 2-worker run (see <see cref="ObservedRun"/>).</summary>
public sealed class ObservedRunTests(ObservedRun run) : IClassFixture<ObservedRun>
{
    /// <summary>Grafana's $__rate_interval for a 1 s scrape interval is 4 s; a longer window keeps training inside it at the run's last second.</summary>
    private const string RateInterval = "30s";

    /// <summary>What Grafana sends for $rank with both ranks chosen.</summary>
    private const string BothRanks = "(0|1)";

    private static readonly HashSet<string> AllowedLabels =
    [
        "__name__", "job", "instance", "role", "rank", "run_id", "otel_scope_name", "otel_scope_version", "otel_scope_schema_url",
        "phase", "operation", "outcome", "reason", "direction", "le", "cpu_mode", "kind",
    ];

    [Fact]
    public async Task Every_dashboard_panel_query_returns_series_from_the_run()
    {
        var dashboard = Dashboard.Load();
        var empty = new List<string>();
        int queries = 0;
        foreach (var panel in dashboard.Panels)
        {
            Assert.True(panel.Expressions.Count > 0, $"panel '{panel.Title}' has no query");
            foreach (string expr in panel.Expressions)
            {
                string promql = Dashboard.Substitute(expr, BothRanks, RateInterval);
                var series = await run.Prometheus.QueryAsync(promql, run.AllUp, CancellationToken.None);
                queries++;
                if (series.Count == 0)
                {
                    empty.Add($"'{panel.Title}': {promql}");
                }
            }
        }

        Assert.True(empty.Count == 0,
            $"expected every panel query to return at least one series at {run.AllUp:O}; {empty.Count} of {queries} returned none:\n" + string.Join("\n", empty));
    }

    [Fact]
    public async Task The_rank_variable_lists_both_workers()
    {
        var rank = Dashboard.Load().Variables.Single(v => v.GetProperty("name").GetString() == "rank");
        var (metric, label) = Dashboard.LabelValues(rank.GetProperty("definition").GetString()!);

        var values = await run.Prometheus.LabelValuesAsync(label, $"{metric}{{run_id=\"{ObservedRun.RunId}\"}}", CancellationToken.None);

        Assert.Equal(["0", "1"], values.Order());
    }

    [Fact]
    public async Task Promtool_accepts_the_metrics_of_every_endpoint()
    {
        Assert.Equal(ObservedRun.Endpoints, run.Scrapes.Count);
        foreach (var (target, body) in run.Scrapes)
        {
            var psi = new ProcessStartInfo(PrometheusServer.Promtool) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("check");
            psi.ArgumentList.Add("metrics");
            using var promtool = Process.Start(psi)!;
            var stdout = promtool.StandardOutput.ReadToEndAsync();
            var stderr = promtool.StandardError.ReadToEndAsync();
            await promtool.StandardInput.WriteAsync(body);
            promtool.StandardInput.Close();
            await promtool.WaitForExitAsync();

            Assert.True(promtool.ExitCode == 0, $"promtool check metrics failed for {target} (status {promtool.ExitCode}):\n{await stdout}{await stderr}");
        }
    }

    [Fact]
    public void Each_program_exports_its_own_series_on_a_port_apart_from_grpc()
    {
        var coordinator = Regex.Match(run.Output, @"Metrics for Prometheus at http://127\.0\.0\.1:(\d+)/metrics");
        var grpc = Regex.Match(run.Output, @"coordinator listening at http://127\.0\.0\.1:(\d+)/");
        Assert.True(coordinator.Success && grpc.Success, "expected the metrics and gRPC addresses in the output:\n" + run.Output);
        Assert.NotEqual(grpc.Groups[1].Value, coordinator.Groups[1].Value);

        var byRole = ObservedRun.TargetsOf(run.TargetsDuringRun).ToDictionary(t => t.Labels.GetValueOrDefault("rank") ?? t.Labels["role"], t => t.Target);
        Assert.Contains("distclip_coordinator_workers_up", run.Scrapes[byRole["coordinator"]]);
        Assert.DoesNotContain("distclip_train_", run.Scrapes[byRole["coordinator"]]);
        foreach (string rank in new[] { "0", "1" })
        {
            Assert.Contains("distclip_train_step_phase_duration_seconds_bucket", run.Scrapes[byRole[rank]]);
            Assert.Contains("process_memory_usage_bytes", run.Scrapes[byRole[rank]]);
        }

        // Only rank 0 commits checkpoints.
        Assert.Contains("distclip_checkpoint_size_bytes", run.Scrapes[byRole["0"]]);
        Assert.DoesNotContain("distclip_checkpoint_size_bytes", run.Scrapes[byRole["1"]]);
    }

    [Fact]
    public void The_targets_file_lists_the_coordinator_and_each_rank_during_the_run_and_nothing_after_it()
    {
        var during = ObservedRun.TargetsOf(run.TargetsDuringRun);
        Assert.Equal(["coordinator", "worker", "worker"], during.Select(t => t.Labels["role"]).Order());
        Assert.Equal(["0", "1"], during.Where(t => t.Labels["role"] == "worker").Select(t => t.Labels["rank"]).Order());
        Assert.All(during, t => Assert.Equal(ObservedRun.RunId, t.Labels["run_id"]));
        Assert.Equal(3, during.Select(t => t.Target).Distinct().Count());

        Assert.Empty(ObservedRun.TargetsOf(File.ReadAllText(run.TargetsFile)));
    }

    [Fact]
    public async Task No_series_carries_a_high_cardinality_label()
    {
        var series = await run.Prometheus.QueryAsync($"{{run_id=\"{ObservedRun.RunId}\", __name__=~\"distclip_.*|process_.*\"}}", run.AllUp, CancellationToken.None);

        var labels = series.SelectMany(s => s.GetProperty("metric").EnumerateObject().Select(p => p.Name)).ToHashSet();
        Assert.Empty(labels.Except(AllowedLabels));

        // The widest metric is a phase histogram: 2 ranks x 7 phases x 17 buckets. A label that grew
        // with the steps (200 of them) would exceed it on its own.
        const int Widest = 2 * 7 * 17;
        var perMetric = series.GroupBy(s => s.GetProperty("metric").GetProperty("__name__").GetString()!).ToDictionary(g => g.Key, g => g.Count());
        Assert.True(perMetric.Count > 20, $"expected the run's metrics, got {string.Join(", ", perMetric.Keys)}");
        Assert.All(perMetric, m => Assert.True(m.Value <= Widest, $"{m.Key} has {m.Value} series, more than {Widest}"));
    }

    [Fact]
    public async Task The_report_command_draws_the_training_curves_beside_the_summary()
    {
        await using var report = ObservedRun.StartCoordinator("report", run.RunDirectory);
        int status = await report.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(status == 0, $"expected status 0, got {status}:\n{report.Output}");
        string[] expected = ["loss.png", "learning-rate.png", "samples-per-second.png", "zero-shot-top1.png"];
        foreach (string name in expected)
        {
            string path = Path.Combine(run.RunDirectory, name);
            Assert.Contains(path, report.Output);
            var (width, height) = PngSize(path);
            Assert.True((width, height) == (800, 450), $"{name}: expected 800x450, got {width}x{height}");
        }
    }

    /// <summary>Width and height from a PNG's IHDR chunk, after checking the signature.</summary>
    private static (int Width, int Height) PngSize(string path)
    {
        byte[] head = new byte[24];
        using (var file = File.OpenRead(path))
        {
            file.ReadExactly(head);
        }

        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, head[..8]);
        return (System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(head.AsSpan(16)), System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(head.AsSpan(20)));
    }
}

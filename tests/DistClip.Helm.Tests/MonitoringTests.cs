using k8s.Models;

namespace DistClip.Helm.Tests;

/// <summary>Metrics ports, Prometheus Operator monitors behind their flags, and the Grafana dashboards ConfigMap.</summary>
public sealed class MonitoringTests
{
    [Fact]
    public void Monitors_are_off_by_default_and_both_programs_serve_metrics_on_the_default_port()
    {
        var chart = RenderedChart.Of(null);

        Assert.Empty(chart.All<ServiceMonitor>());
        Assert.Empty(chart.All<PodMonitor>());
        Assert.Equal(9464, Assert.Single(chart.CoordinatorService.Spec.Ports, p => p.Name == "metrics").Port);
        Assert.Equal(9464, Assert.Single(chart.WorkerService.Spec.Ports, p => p.Name == "metrics").Port);
        // A worker alone would take a free port; the pod's named port must be where it listens.
        Assert.Equal("9464", WorkerJobTests.Option(chart.WorkerContainer, "--metrics-port"));
        Assert.Contains("--metrics-port 9464", Assert.Single(chart.CoordinatorContainer.Args));
    }

    [Fact]
    public void Monitoring_values_scrape_both_programs_on_the_metrics_port()
    {
        var chart = RenderedChart.Of("monitoring-values.yaml");
        var serviceMonitor = chart.Single<ServiceMonitor>();
        var podMonitor = chart.Single<PodMonitor>();

        var endpoint = Assert.Single(serviceMonitor.Spec.Endpoints);
        Assert.Equal(("metrics", "/metrics", "15s"), (endpoint.Port, endpoint.Path, endpoint.Interval));
        Assert.Equal(9465, Assert.Single(chart.CoordinatorService.Spec.Ports, p => p.Name == endpoint.Port).Port);
        Assert.Equal(9465, Assert.Single(chart.CoordinatorContainer.Ports, p => p.Name == "metrics").ContainerPort);
        Assert.Contains("--metrics-port 9465", Assert.Single(chart.CoordinatorContainer.Args));

        var podEndpoint = Assert.Single(podMonitor.Spec.PodMetricsEndpoints);
        Assert.Equal(("metrics", "/metrics"), (podEndpoint.Port, podEndpoint.Path));
        Assert.Equal(9465, Assert.Single(chart.WorkerContainer.Ports, p => p.Name == podEndpoint.Port).ContainerPort);
        Assert.Equal("9465", WorkerJobTests.Option(chart.WorkerContainer, "--metrics-port"));

        // The dashboards group worker series by `rank`: the pod's completion index, the rank it asked for.
        var rank = Assert.Single(podEndpoint.Relabelings, r => r.TargetLabel == "rank");
        Assert.Equal(["__meta_kubernetes_pod_label_batch_kubernetes_io_job_completion_index"], rank.SourceLabels);
        Assert.Equal("worker", Assert.Single(podEndpoint.Relabelings, r => r.TargetLabel == "role").Replacement);
        Assert.Equal("coordinator", Assert.Single(endpoint.Relabelings, r => r.TargetLabel == "role").Replacement);
        Assert.All(new[] { endpoint, podEndpoint }, e => Assert.Equal("run1", Assert.Single(e.Relabelings, r => r.TargetLabel == "run_id").Replacement));

        foreach (var labels in new[] { serviceMonitor.Metadata.Labels, podMonitor.Metadata.Labels })
        {
            Assert.Equal("prometheus", labels["release"]);
        }

        Assert.Equal([RenderedChart.Namespace], serviceMonitor.Spec.NamespaceSelector!.MatchNames);
        Assert.Equal([RenderedChart.Namespace], podMonitor.Spec.NamespaceSelector!.MatchNames);
    }

    [Fact]
    public void The_dashboards_configmap_is_labelled_for_grafana_and_valid_with_no_dashboard()
    {
        using var chartCopy = new ChartCopy();

        var map = Dashboards(RenderedChart.FromDirectory(chartCopy.Directory, "monitoring-values.yaml"));

        Assert.Equal("1", map.Metadata.Labels["grafana_dashboard"]);
        Assert.Equal("ml", map.Metadata.Labels["team"]);
        Assert.Equal("DistClip", map.Metadata.Annotations["grafana_folder"]);
        Assert.True(map.Data is null || map.Data.Count == 0, $"expected no dashboards, got {string.Join(", ", map.Data?.Keys ?? [])}");
    }

    [Fact]
    public void Every_dashboard_json_becomes_one_key_of_the_configmap()
    {
        using var chartCopy = new ChartCopy();
        const string training = """{"title": "DistClip training", "panels": [{"title": "loss: \"train\"", "type": "timeseries"}]}""";
        File.WriteAllText(Path.Combine(chartCopy.Directory, "dashboards", "training.json"), training);
        File.WriteAllText(Path.Combine(chartCopy.Directory, "dashboards", "collectives.json"), """{"title": "DistClip collectives"}""");
        File.WriteAllText(Path.Combine(chartCopy.Directory, "dashboards", "README.md"), "not a dashboard");

        var map = Dashboards(RenderedChart.FromDirectory(chartCopy.Directory, null));

        Assert.Equal(["collectives.json", "training.json"], map.Data.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(training, map.Data["training.json"].TrimEnd('\n'));
    }

    [Fact]
    public void The_dashboards_configmap_can_be_left_out()
    {
        Assert.DoesNotContain(RenderedChart.Of(null, "metrics.grafanaDashboard.enabled=false").All<V1ConfigMap>(), m => m.Metadata.Name.EndsWith("-dashboards", StringComparison.Ordinal));
    }

    private static V1ConfigMap Dashboards(RenderedChart chart) =>
        chart.All<V1ConfigMap>().Single(m => m.Metadata.Name.EndsWith("-dashboards", StringComparison.Ordinal));

    /// <summary>
    /// The chart copied to a temporary folder with an empty dashboards/ folder: the dashboards
    /// themselves belong to the observability work, and these tests must not depend on which exist.
    /// </summary>
    private sealed class ChartCopy : IDisposable
    {
        private readonly DirectoryInfo _root = System.IO.Directory.CreateTempSubdirectory("distclip-chart-");

        public ChartCopy()
        {
            Directory = Path.Combine(_root.FullName, "distclip");
            Copy(new DirectoryInfo(HelmProcess.ChartDirectory), Directory);
            string dashboards = Path.Combine(Directory, "dashboards");
            if (System.IO.Directory.Exists(dashboards))
            {
                System.IO.Directory.Delete(dashboards, recursive: true);
            }

            System.IO.Directory.CreateDirectory(dashboards);
        }

        public string Directory { get; }

        public void Dispose() => _root.Delete(recursive: true);

        private static void Copy(DirectoryInfo from, string to)
        {
            System.IO.Directory.CreateDirectory(to);
            foreach (var file in from.EnumerateFiles())
            {
                file.CopyTo(Path.Combine(to, file.Name));
            }

            foreach (var dir in from.EnumerateDirectories())
            {
                Copy(dir, Path.Combine(to, dir.Name));
            }
        }
    }
}

using k8s.Models;

namespace DistClip.Helm.Tests;

/// <summary>Every supported shape of a release lints clean and renders objects the API server would accept.</summary>
public sealed class ChartRenderTests
{
    public static TheoryData<string> CiValues => new(HelmProcess.CiValuesFiles());

    [Fact]
    public void The_ci_folder_has_one_values_file_per_supported_shape()
    {
        Assert.Equal(
            ["default-values.yaml", "existing-claim-values.yaml", "gpu-values.yaml", "monitoring-values.yaml", "volcano-values.yaml"],
            HelmProcess.CiValuesFiles());
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Lint_passes_in_strict_mode(string ciValuesFile)
    {
        var result = HelmProcess.Run("lint", "--strict", HelmProcess.ChartDirectory,
            "--values", Path.Combine(HelmProcess.ChartDirectory, "ci", ciValuesFile));

        Assert.True(result.ExitCode == 0, $"helm lint --strict with {ciValuesFile}: {result.Describe()}");
        Assert.Contains("1 chart(s) linted, 0 chart(s) failed", result.Output);
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Every_rendered_object_parses_strictly_and_carries_the_standard_labels(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);

        Assert.NotEmpty(chart.Objects);
        foreach (var o in chart.Objects)
        {
            var labels = o.Metadata.Labels ?? new Dictionary<string, string>();
            foreach (string key in new[] { "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart" })
            {
                Assert.True(labels.ContainsKey(key), $"{o.Kind}/{o.Metadata.Name} lacks the label {key}; it has {string.Join(", ", labels.Keys)}");
            }

            Assert.Equal(RenderedChart.Release, labels["app.kubernetes.io/instance"]);
            Assert.Equal(RenderedChart.Namespace, o.Metadata.NamespaceProperty);
        }
    }

    [Fact]
    public void The_default_release_renders_the_run_and_nothing_optional()
    {
        var kinds = RenderedChart.Of(null).Objects.Select(o => $"{o.Kind}/{o.Metadata.Name}").Order(StringComparer.Ordinal);

        Assert.Equal(
            [
                "ConfigMap/run1-distclip-config",
                "ConfigMap/run1-distclip-dashboards",
                "Deployment/run1-distclip-coordinator",
                "Job/run1-distclip-worker",
                "PersistentVolumeClaim/run1-distclip-data",
                "Pod/run1-distclip-test-connection",
                "Secret/run1-distclip-secret",
                "Service/run1-distclip-coordinator",
                "Service/run1-distclip-workers",
            ],
            kinds);
    }

    [Fact]
    public void The_strict_parse_refuses_a_malformed_quantity()
    {
        var result = HelmProcess.Run(RenderedChart.TemplateArguments(HelmProcess.ChartDirectory, null, "workers.resources.limits.memory=4GiB"));
        Assert.True(result.ExitCode == 0, result.Describe());

        var error = Assert.ThrowsAny<YamlDotNet.Core.YamlException>(() => RenderedChart.Parse(result.Output));
        // The parse fails at the bad quantity itself (the message gives its position).
        int line = 1 + result.Output[..result.Output.IndexOf("memory: 4GiB", StringComparison.Ordinal)].Count(c => c == '\n');
        Assert.Equal(line, error.Start.Line);
    }

    [Fact]
    public void The_strict_parse_refuses_an_unknown_field()
    {
        var result = HelmProcess.Run([
            .. RenderedChart.TemplateArguments(HelmProcess.ChartDirectory, null),
            "--set-json", "workers.affinity={\"podAntiAfinity\":{}}",
        ]);
        Assert.True(result.ExitCode == 0, result.Describe());

        var error = Assert.ThrowsAny<Exception>(() => RenderedChart.Parse(result.Output));
        Assert.Contains("podAntiAfinity", error.ToString());
    }

    [Fact]
    public void Notes_tell_where_the_checkpoints_and_summary_are_and_that_the_claim_is_kept()
    {
        var result = HelmProcess.Run("install", RenderedChart.Release, HelmProcess.ChartDirectory,
            "--namespace", RenderedChart.Namespace, "--dry-run=client");

        Assert.True(result.ExitCode == 0, result.Describe());
        string notes = result.Output[result.Output.IndexOf("NOTES:", StringComparison.Ordinal)..];
        Assert.Contains("kubectl -n ml logs -f deploy/run1-distclip-coordinator", notes);
        Assert.Contains("/data/checkpoints/run1/", notes);
        Assert.Contains("/data/runs/run1/summary.json", notes);
        Assert.Contains("kubectl -n ml delete pvc run1-distclip-data", notes);
        Assert.Contains("helm test run1", notes);
    }

    [Fact]
    public void The_helm_test_pod_is_a_test_hook_that_dials_the_coordinator()
    {
        var chart = RenderedChart.Of(null);
        var pod = chart.TestPod;

        Assert.Equal("test", pod.Metadata.Annotations["helm.sh/hook"]);
        Assert.Equal("Never", pod.Spec.RestartPolicy);
        string script = Assert.Single(Assert.Single(pod.Spec.Containers).Args);
        Assert.Contains($"/dev/tcp/{chart.CoordinatorService.Metadata.Name}.ml.svc/29400", script);
    }

    [Fact]
    public void The_chart_renders_without_the_helm_test_pod_when_tests_are_off()
    {
        Assert.Empty(RenderedChart.Of(null, "tests.enabled=false").All<V1Pod>());
    }
}

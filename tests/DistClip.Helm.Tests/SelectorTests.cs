using k8s.Models;

namespace DistClip.Helm.Tests;

/// <summary>Selectors use only name, instance and component, and each picks the pods it is meant for.</summary>
public sealed class SelectorTests
{
    private static readonly string[] SelectorKeys = ["app.kubernetes.io/component", "app.kubernetes.io/instance", "app.kubernetes.io/name"];

    public static TheoryData<string> CiValues => new(HelmProcess.CiValuesFiles());

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Selectors_use_only_name_instance_and_component(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        var selectors = new List<(string Owner, IDictionary<string, string> Labels)>
        {
            ($"Deployment/{chart.Coordinator.Metadata.Name}", chart.Coordinator.Spec.Selector.MatchLabels),
        };
        selectors.AddRange(chart.All<V1Service>().Select(s => ($"Service/{s.Metadata.Name}", s.Spec.Selector)));
        selectors.AddRange(chart.All<ServiceMonitor>().Select(m => ($"ServiceMonitor/{m.Metadata.Name}", m.Spec.Selector.MatchLabels)));
        selectors.AddRange(chart.All<PodMonitor>().Select(m => ($"PodMonitor/{m.Metadata.Name}", m.Spec.Selector.MatchLabels)));

        foreach (var (owner, labels) in selectors)
        {
            Assert.True(SelectorKeys.SequenceEqual(labels.Keys.Order(StringComparer.Ordinal)),
                $"{owner} selects on {string.Join(", ", labels.Keys)}; expected exactly {string.Join(", ", SelectorKeys)}");
        }

        Assert.Null(chart.WorkerJob.Spec.Selector); // the Job controller makes its own
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Each_selector_picks_its_component_pods(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        var coordinatorPods = chart.Coordinator.Spec.Template.Metadata.Labels;
        var workerPods = chart.WorkerJob.Spec.Template.Metadata.Labels;

        Assert.True(Selects(chart.Coordinator.Spec.Selector.MatchLabels, coordinatorPods));
        Assert.True(Selects(chart.CoordinatorService.Spec.Selector, coordinatorPods));
        Assert.False(Selects(chart.CoordinatorService.Spec.Selector, workerPods));
        Assert.True(Selects(chart.WorkerService.Spec.Selector, workerPods));
        Assert.False(Selects(chart.WorkerService.Spec.Selector, coordinatorPods));
        Assert.False(Selects(chart.WorkerService.Spec.Selector, chart.TestPod.Metadata.Labels));
        foreach (var monitor in chart.All<ServiceMonitor>())
        {
            Assert.True(Selects(monitor.Spec.Selector.MatchLabels, chart.CoordinatorService.Metadata.Labels));
            Assert.False(Selects(monitor.Spec.Selector.MatchLabels, chart.WorkerService.Metadata.Labels));
        }

        foreach (var monitor in chart.All<PodMonitor>())
        {
            Assert.True(Selects(monitor.Spec.Selector.MatchLabels, workerPods));
            Assert.False(Selects(monitor.Spec.Selector.MatchLabels, coordinatorPods));
        }
    }

    private static bool Selects(IDictionary<string, string> selector, IDictionary<string, string> labels) =>
        selector.All(s => labels.TryGetValue(s.Key, out string? v) && v == s.Value);
}

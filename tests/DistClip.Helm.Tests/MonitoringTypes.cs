using k8s;
using k8s.Models;

namespace DistClip.Helm.Tests;

// The chart's custom resources, with only the fields it uses: the strict parse refuses anything
// else, so a typo in a template fails here as an unknown field would on the API server.

/// <summary>monitoring.coreos.com/v1 ServiceMonitor (Prometheus Operator).</summary>
public sealed class ServiceMonitor : IKubernetesObject<V1ObjectMeta>
{
    public const string TypeKey = "monitoring.coreos.com/v1/ServiceMonitor";

    public string ApiVersion { get; set; } = "";

    public string Kind { get; set; } = "";

    public V1ObjectMeta Metadata { get; set; } = new();

    public ServiceMonitorSpec Spec { get; set; } = new();
}

public sealed class ServiceMonitorSpec
{
    public MonitorNamespaceSelector? NamespaceSelector { get; set; }

    public V1LabelSelector Selector { get; set; } = new();

    public List<MonitorEndpoint> Endpoints { get; set; } = [];
}

/// <summary>monitoring.coreos.com/v1 PodMonitor (Prometheus Operator).</summary>
public sealed class PodMonitor : IKubernetesObject<V1ObjectMeta>
{
    public const string TypeKey = "monitoring.coreos.com/v1/PodMonitor";

    public string ApiVersion { get; set; } = "";

    public string Kind { get; set; } = "";

    public V1ObjectMeta Metadata { get; set; } = new();

    public PodMonitorSpec Spec { get; set; } = new();
}

public sealed class PodMonitorSpec
{
    public MonitorNamespaceSelector? NamespaceSelector { get; set; }

    public V1LabelSelector Selector { get; set; } = new();

    public List<MonitorEndpoint> PodMetricsEndpoints { get; set; } = [];
}

public sealed class MonitorNamespaceSelector
{
    public List<string> MatchNames { get; set; } = [];
}

public sealed class MonitorEndpoint
{
    public string Port { get; set; } = "";

    public string? Path { get; set; }

    public string? Scheme { get; set; }

    public string? Interval { get; set; }

    public List<RelabelConfig> Relabelings { get; set; } = [];
}

/// <summary>A Prometheus relabeling rule, with the fields the chart uses.</summary>
public sealed class RelabelConfig
{
    public List<string>? SourceLabels { get; set; }

    public string? TargetLabel { get; set; }

    public string? Replacement { get; set; }
}

/// <summary>scheduling.volcano.sh/v1beta1 PodGroup (Volcano gang scheduling).</summary>
public sealed class PodGroup : IKubernetesObject<V1ObjectMeta>
{
    public const string TypeKey = "scheduling.volcano.sh/v1beta1/PodGroup";

    public string ApiVersion { get; set; } = "";

    public string Kind { get; set; } = "";

    public V1ObjectMeta Metadata { get; set; } = new();

    public PodGroupSpec Spec { get; set; } = new();
}

public sealed class PodGroupSpec
{
    public int MinMember { get; set; }

    public string? Queue { get; set; }

    public string? PriorityClassName { get; set; }
}

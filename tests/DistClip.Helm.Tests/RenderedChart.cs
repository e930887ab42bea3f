using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using DistClip.Config;
using k8s;
using k8s.Models;

namespace DistClip.Helm.Tests;

/// <summary>
/// helm/distclip rendered by <c>helm template</c> for one set of values, every object parsed
/// strictly by KubernetesClient: an unknown field, a duplicate key or a malformed quantity fails the
/// parse, as the API server would refuse it.
/// </summary>
internal sealed class RenderedChart
{
    public const string Release = "run1";
    public const string Namespace = "ml";

    private static readonly Dictionary<string, Type> CustomResources = new()
    {
        [ServiceMonitor.TypeKey] = typeof(ServiceMonitor),
        [PodMonitor.TypeKey] = typeof(PodMonitor),
        [PodGroup.TypeKey] = typeof(PodGroup),
    };

    private static readonly ConcurrentDictionary<string, Lazy<RenderedChart>> Cache = new();

    private RenderedChart(string text, IReadOnlyList<IKubernetesObject<V1ObjectMeta>> objects)
    {
        Text = text;
        Objects = objects;
    }

    /// <summary>The manifests as helm printed them.</summary>
    public string Text { get; }

    public IReadOnlyList<IKubernetesObject<V1ObjectMeta>> Objects { get; }

    /// <summary>Renders with ci/<paramref name="ciValuesFile"/> (null: the defaults) and <c>--set</c> pairs; cached per arguments.</summary>
    public static RenderedChart Of(string? ciValuesFile, params string[] set) =>
        FromDirectory(HelmProcess.ChartDirectory, ciValuesFile, set);

    /// <summary>Renders the chart in <paramref name="chartDirectory"/> (a test's modified copy).</summary>
    public static RenderedChart FromDirectory(string chartDirectory, string? ciValuesFile, params string[] set)
    {
        var args = TemplateArguments(chartDirectory, ciValuesFile, set);
        return Cache.GetOrAdd(string.Join('\0', args), _ => new Lazy<RenderedChart>(() => Render(args))).Value;
    }

    /// <summary>The arguments of <c>helm template</c> for these values, for a test that expects it to fail.</summary>
    public static string[] TemplateArguments(string chartDirectory, string? ciValuesFile, params string[] set)
    {
        var args = new List<string> { "template", Release, chartDirectory, "--namespace", Namespace };
        if (ciValuesFile is not null)
        {
            args.AddRange(["--values", Path.Combine(chartDirectory, "ci", ciValuesFile)]);
        }

        foreach (string pair in set)
        {
            args.AddRange(["--set", pair]);
        }

        return [.. args];
    }

    /// <summary>Parses manifests strictly; throws on anything the API server would refuse to decode.</summary>
    public static IReadOnlyList<IKubernetesObject<V1ObjectMeta>> Parse(string text) =>
        KubernetesYaml.LoadAllFromString(text, CustomResources, strict: true)
            .Select(o => o as IKubernetesObject<V1ObjectMeta> ?? throw new InvalidDataException($"{o.GetType().Name} has no object metadata"))
            .ToList();

    private static RenderedChart Render(string[] args)
    {
        var result = HelmProcess.Run(args);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"helm {string.Join(' ', args)} failed: {result.Describe()}");
        }

        return new RenderedChart(result.Output, Parse(result.Output));
    }

    public IEnumerable<T> All<T>() => Objects.OfType<T>();

    public T Single<T>()
        where T : IKubernetesObject<V1ObjectMeta>
    {
        var found = All<T>().ToList();
        return found.Count == 1 ? found[0] : throw new InvalidOperationException($"expected one {typeof(T).Name}, rendered {found.Count}");
    }

    public T Named<T>(string name)
        where T : IKubernetesObject<V1ObjectMeta> =>
        All<T>().SingleOrDefault(o => o.Metadata.Name == name)
            ?? throw new InvalidOperationException($"no {typeof(T).Name} named {name}; rendered: {string.Join(", ", Objects.Select(o => $"{o.Kind}/{o.Metadata.Name}"))}");

    public V1Deployment Coordinator => Single<V1Deployment>();

    public V1Container CoordinatorContainer => Coordinator.Spec.Template.Spec.Containers.Single(c => c.Name == "coordinator");

    public V1Job WorkerJob => Single<V1Job>();

    public V1Container WorkerContainer => WorkerJob.Spec.Template.Spec.Containers.Single(c => c.Name == "worker");

    public V1Service CoordinatorService => All<V1Service>().Single(s => s.Spec.ClusterIP != "None");

    public V1Service WorkerService => All<V1Service>().Single(s => s.Spec.ClusterIP == "None");

    /// <summary>The <c>helm test</c> pod.</summary>
    public V1Pod TestPod => Single<V1Pod>();

    /// <summary>Every pod spec the chart renders: the coordinator, the workers and the test pod.</summary>
    public IEnumerable<(string Owner, V1PodSpec Spec)> PodSpecs =>
        All<V1Deployment>().Select(d => ($"Deployment/{d.Metadata.Name}", d.Spec.Template.Spec))
            .Concat(All<V1Job>().Select(j => ($"Job/{j.Metadata.Name}", j.Spec.Template.Spec)))
            .Concat(All<V1Pod>().Select(p => ($"Pod/{p.Metadata.Name}", p.Spec)));

    /// <summary>The run configuration the coordinator reads (config.json in the chart's ConfigMap).</summary>
    public JsonElement RunConfig
    {
        get
        {
            var map = All<V1ConfigMap>().Single(c => c.Data?.ContainsKey("config.json") == true);
            return JsonDocument.Parse(map.Data["config.json"]).RootElement.Clone();
        }
    }

    /// <summary>The rendered manifests with the given objects left out, as helm printed them.</summary>
    public string TextWithout(Func<string, bool> isLeftOut)
    {
        var kept = new StringBuilder();
        foreach (string document in Text.Split("\n---", StringSplitOptions.RemoveEmptyEntries))
        {
            if (!isLeftOut(document))
            {
                kept.Append(document).Append("\n---");
            }
        }

        return kept.ToString();
    }
}

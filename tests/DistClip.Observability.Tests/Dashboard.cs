using System.Text.Json;
using System.Text.RegularExpressions;

namespace DistClip.Observability.Tests;

/// <summary>The Grafana dashboard the chart ships (helm/distclip/dashboards/distclip.json), read as Grafana reads it.</summary>
internal sealed partial record Dashboard(JsonElement Root)
{
    public sealed record Panel(string Title, string Type, JsonElement Json, IReadOnlyList<string> Expressions);

    public static Dashboard Load() =>
        new(JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "distclip.json"))).RootElement.Clone());

    /// <summary>Every panel, those inside rows included; rows themselves are not panels.</summary>
    public IReadOnlyList<Panel> Panels => [.. Flatten(Root.GetProperty("panels")).Where(p => p.Type != "row")];

    public IReadOnlyList<string> RowTitles => [.. Flatten(Root.GetProperty("panels")).Where(p => p.Type == "row").Select(p => p.Title)];

    public IReadOnlyList<JsonElement> Variables => [.. Root.GetProperty("templating").GetProperty("list").EnumerateArray()];

    /// <summary>An expression as Grafana sends it: <c>$rank</c> as the regex of the chosen ranks, <c>$__rate_interval</c> as a window.</summary>
    public static string Substitute(string expression, string ranks, string rateInterval) =>
        expression.Replace("$__rate_interval", rateInterval, StringComparison.Ordinal).Replace("$rank", ranks, StringComparison.Ordinal);

    /// <summary><c>label_values(METRIC, LABEL)</c> of a query variable.</summary>
    public static (string Metric, string Label) LabelValues(string definition)
    {
        var m = LabelValuesPattern().Match(definition);
        return m.Success ? (m.Groups[1].Value, m.Groups[2].Value) : throw new FormatException($"not label_values(metric, label): {definition}");
    }

    private static IEnumerable<Panel> Flatten(JsonElement panels)
    {
        foreach (var p in panels.EnumerateArray())
        {
            string type = p.GetProperty("type").GetString()!;
            var exprs = p.TryGetProperty("targets", out var targets)
                ? targets.EnumerateArray().Where(t => t.TryGetProperty("expr", out _)).Select(t => t.GetProperty("expr").GetString()!).ToList()
                : [];
            yield return new Panel(p.GetProperty("title").GetString()!, type, p, exprs);
            if (p.TryGetProperty("panels", out var inner))
            {
                foreach (var q in Flatten(inner))
                {
                    yield return q;
                }
            }
        }
    }

    [GeneratedRegex(@"^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$")]
    private static partial Regex LabelValuesPattern();
}

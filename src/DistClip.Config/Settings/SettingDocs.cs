using System.Text;
using System.Text.Json.Nodes;

namespace DistClip.Config.Settings;

/// <summary>
/// What is generated from the setting table rather than written by hand: the README's settings
/// table and the Helm chart's schema for its <c>config</c> values. Tests compare both with the
/// committed files; <c>DISTCLIP_UPDATE_GENERATED=1</c> makes those tests rewrite them instead.
/// </summary>
public static class SettingDocs
{
    /// <summary>The README's table of <c>coordinator launch</c> settings, one row per setting.</summary>
    public static string MarkdownTable()
    {
        var text = new StringBuilder();
        text.Append("| setting | default | meaning |\n| --- | --- | --- |\n");
        foreach (var s in SettingTable<RunConfig>.Settings)
        {
            string value = s.Type switch
            {
                SettingType.Choice => string.Join("\\|", s.Choices!),
                SettingType.Integer => "N",
                SettingType.Real => "X",
                _ => s.Name.Contains("dir", StringComparison.Ordinal) ? "DIR" : s.Name is "hostfile" or "model" or "init" ? "FILE" : "TEXT",
            };
            string defaults = s.Attribute.DefaultDoc ?? (s.Default is null ? "" : s.Format(s.Default));
            text.Append($"| `--{s.Name} {value}` | {Cell(defaults)} | {Cell(s.Doc)} |\n");
        }

        return text.ToString();
    }

    /// <summary>
    /// The JSON schema of the chart's <c>config</c> values: every setting that has a meaning in a
    /// cluster, with its type, bounds, choices and pattern. The chart starts exactly
    /// <c>workers</c> workers, so there it is required and at least 1 (no hostfile to count).
    /// </summary>
    public static JsonObject HelmConfigSchema()
    {
        var properties = new JsonObject();
        foreach (var s in SettingTable<RunConfig>.Settings.Where(s => s.Attribute.InChart))
        {
            var a = s.Attribute;
            var p = new JsonObject
            {
                ["type"] = s.Type switch { SettingType.Integer => "integer", SettingType.Real => "number", _ => "string" },
                ["description"] = s.Doc,
            };
            if (s.Name == "workers")
            {
                p["description"] = "worker processes, one per device: the world size, the worker Job's completions and parallelism";
                p["minimum"] = 1;
            }
            else
            {
                if (a.Positive)
                {
                    p["exclusiveMinimum"] = 0;
                }

                if (!double.IsNaN(a.Min))
                {
                    p["minimum"] = Number(a.Min);
                }

                if (!double.IsNaN(a.Max))
                {
                    p[a.ExclusiveMax ? "exclusiveMaximum" : "maximum"] = Number(a.Max);
                }
            }

            if (s.Choices is not null)
            {
                p["enum"] = new JsonArray([.. s.Choices.Select(c => JsonValue.Create(c))]);
            }

            if (a.Pattern is not null)
            {
                p["pattern"] = a.Pattern;
            }

            properties[s.JsonName] = p;
        }

        return new JsonObject
        {
            ["type"] = "object",
            ["description"] = "The run's settings in the coordinator's snake_case names (coordinator launch --help; generated from DistClip.Config). " +
                "checkpoint_dir, run_dir, run_id and resume are set by the chart; the link stack is workers.link.",
            ["additionalProperties"] = false,
            ["required"] = new JsonArray("workers"),
            ["properties"] = properties,
        };
    }

    private static JsonNode Number(double x) => x == Math.Floor(x) && Math.Abs(x) < 1e15 ? JsonValue.Create((long)x) : JsonValue.Create(x);

    private static string Cell(string text) =>
        text.Replace("|", "\\|", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}

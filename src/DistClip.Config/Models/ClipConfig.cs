using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DistClip.Config;

/// <summary>
/// One CLIP model, as data. Built-in models are the JSON files under <c>configs/</c> (embedded);
/// keys are snake_case and unknown keys are refused by name.
/// </summary>
public sealed record ClipConfig(
    string Name,
    int EmbedDim,
    VisionConfig Vision,
    TextConfig Text,
    double InitLogitScale = ClipConfig.DefaultInitLogitScale,
    double MaxLogitScale = ClipConfig.DefaultMaxLogitScale,
    double? InitLogitBias = null)
{
    /// <summary>ln(1/0.07): CLIP's initial temperature 0.07.</summary>
    public const double DefaultInitLogitScale = 2.659260036932778;

    /// <summary>ln(100): CLIP clips the logit multiplier at 100 for stability.</summary>
    public const double DefaultMaxLogitScale = 4.605170185988092;

    private const string ResourcePrefix = "DistClip.Config.models.";
    private const string ResourceSuffix = ".json";

    private static readonly Lazy<string[]> BuiltIns = new(() =>
        [.. typeof(ClipConfig).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(ResourceSuffix, StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..^ResourceSuffix.Length])
            .Order(StringComparer.Ordinal)]);

    /// <summary>The names <see cref="Load"/> accepts besides file paths, sorted.</summary>
    public static IReadOnlyList<string> BuiltInNames => BuiltIns.Value;

    /// <summary>A built-in model by name (e.g. <c>clip-tiny</c>) or a <c>.json</c> file by path.</summary>
    public static ClipConfig Load(string nameOrPath)
    {
        ArgumentNullException.ThrowIfNull(nameOrPath);
        if (BuiltIns.Value.Contains(nameOrPath))
        {
            using var stream = typeof(ClipConfig).Assembly.GetManifestResourceStream(ResourcePrefix + nameOrPath + ResourceSuffix)!;
            using var reader = new StreamReader(stream);
            return Parse(reader.ReadToEnd(), nameOrPath);
        }

        if (File.Exists(nameOrPath))
        {
            return Parse(File.ReadAllText(nameOrPath), nameOrPath);
        }

        if (nameOrPath.EndsWith(ResourceSuffix, StringComparison.OrdinalIgnoreCase) || nameOrPath.Contains(Path.DirectorySeparatorChar))
        {
            throw new ConfigException("model", $"config file '{nameOrPath}' does not exist");
        }

        throw new ConfigException(
            "model",
            $"'{nameOrPath}' is neither a built-in model nor a .json file; built-in names: {string.Join(", ", BuiltIns.Value)}");
    }

    /// <summary>Parses and validates <paramref name="json"/>; errors name <paramref name="source"/> and the field.</summary>
    public static ClipConfig Parse(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var document = ParseDocument(json);
            var root = ConfigObject.Root(document.RootElement);
            var config = new ClipConfig(
                Name: root.RequiredString("name"),
                EmbedDim: root.RequiredInt("embed_dim"),
                Vision: VisionConfig.Read(root.RequiredObject("vision")),
                Text: TextConfig.Read(root.RequiredObject("text")),
                InitLogitScale: root.OptionalDouble("init_logit_scale", DefaultInitLogitScale),
                MaxLogitScale: root.OptionalDouble("max_logit_scale", DefaultMaxLogitScale),
                InitLogitBias: root.OptionalDouble("init_logit_bias", double.NaN) is double bias && !double.IsNaN(bias) ? bias : null);
            root.RefuseUnknownKeys();
            config.Validate();
            return config;
        }
        catch (ConfigException e)
        {
            throw e.WithSource(source);
        }
    }

    /// <summary>Throws <see cref="ConfigException"/> naming the first field that cannot build a model.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
        {
            throw new ConfigException("name", "must not be empty");
        }

        Check.Positive("embed_dim", EmbedDim);
        if (Vision is null)
        {
            throw new ConfigException("vision", "required");
        }

        if (Text is null)
        {
            throw new ConfigException("text", "required");
        }

        Vision.Validate();
        Text.Validate();
        if (!double.IsFinite(InitLogitScale))
        {
            throw new ConfigException("init_logit_scale", $"must be finite, got {InitLogitScale}");
        }

        if (!double.IsFinite(MaxLogitScale) || MaxLogitScale < InitLogitScale)
        {
            throw new ConfigException(
                "max_logit_scale",
                $"{MaxLogitScale.ToString(CultureInfo.InvariantCulture)} must be finite and at least init_logit_scale {InitLogitScale.ToString(CultureInfo.InvariantCulture)}");
        }

        if (InitLogitBias is double bias && !double.IsFinite(bias))
        {
            throw new ConfigException("init_logit_bias", $"must be finite, got {bias}");
        }
    }

    /// <summary>
    /// The model the sigmoid loss trains: a learnable logit bias, and SigLIP's initial temperature and
    /// bias (t' = ln 10, b = −10) unless this config already has a bias of its own.
    /// </summary>
    public ClipConfig WithLogitBias() =>
        InitLogitBias is not null ? this : this with { InitLogitScale = SigLipInitLogitScale, InitLogitBias = SigLipInitLogitBias };

    /// <summary>SigLIP's initial log temperature, ln 10 (Zhai et al., 2023).</summary>
    public static readonly double SigLipInitLogitScale = Math.Log(10);

    /// <summary>SigLIP's initial logit bias, −10: the loss starts near the prior of one positive in B.</summary>
    public const double SigLipInitLogitBias = -10;

    /// <summary>Canonical JSON (every key the types use, defaults written out); <see cref="Parse"/> reads it back equal.</summary>
    public string ToJson()
    {
        var json = new JsonObject
        {
            ["name"] = Name,
            ["embed_dim"] = EmbedDim,
            ["vision"] = Vision.ToJson(),
            ["text"] = Text.ToJson(),
            ["init_logit_scale"] = InitLogitScale,
            ["max_logit_scale"] = MaxLogitScale,
        };
        if (InitLogitBias is double bias)
        {
            json["init_logit_bias"] = bias;
        }

        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonDocument ParseDocument(string json)
    {
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ConfigException("(json)", $"not valid JSON: {e.Message}");
        }
    }
}

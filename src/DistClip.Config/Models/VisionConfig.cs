using System.Text.Json.Nodes;

namespace DistClip.Config;

/// <summary>
/// The image tower. <see cref="Type"/> picks which fields matter:
/// <c>vit</c>: image_size, channels, patch_size, width, layers, heads, mlp_ratio, activation;
/// <c>resnet</c>: image_size, channels, width, resnet_layers, heads, pool;
/// <c>mlp</c>: image_size, channels, hidden_dim. Fields a type does not use stay at their defaults.
/// </summary>
public sealed record VisionConfig(
    string Type,
    int ImageSize,
    int Channels,
    int PatchSize = 0,
    int Width = 0,
    int Layers = 0,
    int Heads = 0,
    double MlpRatio = 4.0,
    int[]? ResNetLayers = null,
    int HiddenDim = 0,
    string Pool = VisionConfig.AttentionPool,
    string Activation = Activations.Gelu)
{
    public const string Vit = "vit";
    public const string ResNet = "resnet";
    public const string Mlp = "mlp";
    public const string AttentionPool = "attention";
    public const string AveragePool = "average";

    /// <summary>ModifiedResNet halves the resolution five times (stem 4×, three strided stages 8×).</summary>
    public const int ResNetDownsampling = 32;

    private static readonly string[] Types = [Vit, ResNet, Mlp];
    private static readonly string[] Pools = [AttentionPool, AveragePool];

    /// <summary>ResNet feature width after the last stage (bottleneck expansion 4 × 8 × width).</summary>
    public int ResNetOutputWidth => Width * ResNetDownsampling;

    public bool Equals(VisionConfig? other) =>
        other is not null
        && (Type, ImageSize, Channels, PatchSize, Width, Layers, Heads, MlpRatio, HiddenDim, Pool, Activation)
            == (other.Type, other.ImageSize, other.Channels, other.PatchSize, other.Width, other.Layers, other.Heads,
                other.MlpRatio, other.HiddenDim, other.Pool, other.Activation)
        && (ResNetLayers ?? []).SequenceEqual(other.ResNetLayers ?? []);

    public override int GetHashCode() =>
        HashCode.Combine(Type, ImageSize, Channels, PatchSize, Width, Layers, Heads, HashCode.Combine(MlpRatio, HiddenDim, Pool, Activation, ResNetLayers?.Length));

    /// <summary>Throws <see cref="ConfigException"/> naming the first bad field (paths under <c>vision.</c>).</summary>
    public void Validate()
    {
        const string p = "vision.";
        Check.OneOf(p + "type", Type, Types);
        Check.Positive(p + "image_size", ImageSize);
        Check.Positive(p + "channels", Channels);
        switch (Type)
        {
            case Vit:
                Check.Positive(p + "patch_size", PatchSize);
                if (ImageSize % PatchSize != 0)
                {
                    throw new ConfigException(p + "patch_size", $"{PatchSize} does not divide image_size {ImageSize}");
                }

                Check.TransformerShape(p, Width, Layers, Heads, MlpRatio, Activation);
                break;
            case ResNet:
                if (ResNetLayers is not { Length: 4 })
                {
                    throw new ConfigException(p + "resnet_layers", "expected 4 stage depths, e.g. [3, 4, 6, 3]");
                }

                for (var i = 0; i < ResNetLayers.Length; i++)
                {
                    Check.Positive($"{p}resnet_layers[{i}]", ResNetLayers[i]);
                }

                Check.Positive(p + "width", Width);
                if (ImageSize % ResNetDownsampling != 0)
                {
                    throw new ConfigException(p + "image_size", $"{ImageSize} is not a multiple of {ResNetDownsampling}, the ResNet's total downsampling");
                }

                Check.OneOf(p + "pool", Pool, Pools);
                if (Pool == AttentionPool)
                {
                    Check.Positive(p + "heads", Heads);
                    Check.Divides(p + "heads", Heads, ResNetOutputWidth, "the attention-pool width (32 × width)");
                }

                break;
            case Mlp:
                Check.Positive(p + "hidden_dim", HiddenDim);
                break;
        }
    }

    internal static VisionConfig Read(ConfigObject json)
    {
        var type = json.RequiredString("type");
        Check.OneOf(json.FieldPath("type"), type, Types);
        var imageSize = json.RequiredInt("image_size");
        var channels = json.RequiredInt("channels");
        var config = type switch
        {
            Vit => new VisionConfig(
                type, imageSize, channels,
                PatchSize: json.RequiredInt("patch_size"),
                Width: json.RequiredInt("width"),
                Layers: json.RequiredInt("layers"),
                Heads: json.RequiredInt("heads"),
                MlpRatio: json.OptionalDouble("mlp_ratio", 4.0),
                Activation: json.OptionalString("activation", Activations.Gelu)),
            ResNet => ReadResNet(json, type, imageSize, channels),
            _ => new VisionConfig(type, imageSize, channels, HiddenDim: json.RequiredInt("hidden_dim")),
        };
        json.RefuseUnknownKeys($"for vision type '{type}'");
        return config;
    }

    private static VisionConfig ReadResNet(ConfigObject json, string type, int imageSize, int channels)
    {
        var width = json.RequiredInt("width");
        return new VisionConfig(
            type, imageSize, channels,
            Width: width,
            ResNetLayers: json.RequiredIntArray("resnet_layers"),
            // OpenAI's default: one head per 64 channels of the pooled features.
            Heads: json.OptionalInt("heads", width * ResNetDownsampling / 64),
            Pool: json.OptionalString("pool", AttentionPool));
    }

    internal JsonObject ToJson()
    {
        var json = new JsonObject { ["type"] = Type, ["image_size"] = ImageSize, ["channels"] = Channels };
        switch (Type)
        {
            case Vit:
                json["patch_size"] = PatchSize;
                json["width"] = Width;
                json["layers"] = Layers;
                json["heads"] = Heads;
                json["mlp_ratio"] = MlpRatio;
                json["activation"] = Activation;
                break;
            case ResNet:
                json["width"] = Width;
                json["resnet_layers"] = new JsonArray([.. (ResNetLayers ?? []).Select(n => (JsonNode)n)]);
                json["heads"] = Heads;
                json["pool"] = Pool;
                break;
            default:
                json["hidden_dim"] = HiddenDim;
                break;
        }

        return json;
    }
}

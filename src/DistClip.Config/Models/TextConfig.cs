using System.Text.Json.Nodes;

namespace DistClip.Config;

/// <summary>
/// The text tower. <c>causal</c>: CLIP's GPT-style transformer, pooled at the end-of-text token;
/// <c>bert</c>: a bidirectional encoder with a padding mask, pooled at the first (start) token.
/// </summary>
public sealed record TextConfig(
    string Type,
    int VocabSize,
    int ContextLength,
    int Width,
    int Layers,
    int Heads,
    double MlpRatio = 4.0,
    string Activation = Activations.Gelu,
    double TokenInitStd = TextConfig.DefaultTokenInitStd)
{
    public const string Causal = "causal";
    public const string Bert = "bert";

    /// <summary>OpenAI's CLIP (and GPT-2) draw the token table from N(0, 0.02²).</summary>
    public const double DefaultTokenInitStd = 0.02;

    private static readonly string[] Types = [Causal, Bert];

    /// <summary>Throws <see cref="ConfigException"/> naming the first bad field (paths under <c>text.</c>).</summary>
    public void Validate()
    {
        const string p = "text.";
        Check.OneOf(p + "type", Type, Types);
        Check.Positive(p + "vocab_size", VocabSize);
        Check.Positive(p + "context_length", ContextLength);
        Check.TransformerShape(p, Width, Layers, Heads, MlpRatio, Activation);
        if (!double.IsFinite(TokenInitStd) || TokenInitStd <= 0)
        {
            throw new ConfigException(p + "token_init_std", $"must be a positive finite standard deviation, got {TokenInitStd.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        }
    }

    internal static TextConfig Read(ConfigObject json)
    {
        var type = json.RequiredString("type");
        Check.OneOf(json.FieldPath("type"), type, Types);
        var config = new TextConfig(
            type,
            VocabSize: json.RequiredInt("vocab_size"),
            ContextLength: json.RequiredInt("context_length"),
            Width: json.RequiredInt("width"),
            Layers: json.RequiredInt("layers"),
            Heads: json.RequiredInt("heads"),
            MlpRatio: json.OptionalDouble("mlp_ratio", 4.0),
            Activation: json.OptionalString("activation", Activations.Gelu),
            TokenInitStd: json.OptionalDouble("token_init_std", DefaultTokenInitStd));
        json.RefuseUnknownKeys();
        return config;
    }

    internal JsonObject ToJson() => new()
    {
        ["type"] = Type,
        ["vocab_size"] = VocabSize,
        ["context_length"] = ContextLength,
        ["width"] = Width,
        ["layers"] = Layers,
        ["heads"] = Heads,
        ["mlp_ratio"] = MlpRatio,
        ["activation"] = Activation,
        ["token_init_std"] = TokenInitStd,
    };
}

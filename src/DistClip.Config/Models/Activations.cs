namespace DistClip.Config;

/// <summary>The MLP activations a transformer config may name.</summary>
public static class Activations
{
    /// <summary>Exact GELU (erf form).</summary>
    public const string Gelu = "gelu";

    /// <summary>x·σ(1.702x): what OpenAI's released CLIP weights were trained with.</summary>
    public const string QuickGelu = "quick_gelu";

    internal static readonly string[] Names = [Gelu, QuickGelu];
}

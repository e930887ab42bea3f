using System.Globalization;
using DistClip.Config;

namespace DistClip.Model.Import;

/// <summary>
/// The <see cref="ClipConfig"/> a published state dict describes, read from its names and shapes as
/// OpenAI's <c>clip.build_model</c> does: a ViT when <c>visual.proj</c> is present, else a
/// ModifiedResNet. Head counts are not stored in weights; CLIP uses one head per 64 channels
/// (<paramref name="headWidth"/>). Nor is the activation: OpenAI's weights use QuickGELU, most
/// open_clip (LAION) weights exact GELU.
/// </summary>
public static class PretrainedConfig
{
    public static ClipConfig Infer(StateDictFile file, string name, string activation = Activations.QuickGelu, int headWidth = 64)
    {
        ArgumentNullException.ThrowIfNull(file);
        return Infer(file.Shapes(), name, activation, headWidth);
    }

    /// <exception cref="PretrainedImportException">A tensor the architecture needs is absent; names it.</exception>
    public static ClipConfig Infer(IReadOnlyDictionary<string, long[]> shapes, string name, string activation = Activations.QuickGelu, int headWidth = 64)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentOutOfRangeException.ThrowIfLessThan(headWidth, 1);
        long[] Shape(string key) => shapes.TryGetValue(key, out var shape)
            ? shape
            : throw new PretrainedImportException($"cannot infer the model: the state dict has no '{key}' (is it a CLIP state dict with OpenAI's names?)");

        int textWidth = (int)Shape("ln_final.weight")[0];
        var text = new TextConfig(
            TextConfig.Causal,
            VocabSize: (int)Shape("token_embedding.weight")[0],
            ContextLength: (int)Shape("positional_embedding")[0],
            Width: textWidth,
            Layers: CountIndices(shapes, "transformer.resblocks."),
            Heads: Math.Max(1, textWidth / headWidth),
            MlpRatio: MlpRatio(Shape("transformer.resblocks.0.mlp.c_fc.weight"), textWidth),
            Activation: activation);
        int embedDim = (int)Shape("text_projection")[1];

        VisionConfig vision;
        if (shapes.ContainsKey("visual.proj"))
        {
            long[] conv = Shape("visual.conv1.weight"); // [width, channels, patch, patch]
            int width = (int)conv[0];
            int patch = (int)conv[3];
            int grid = GridSide(Shape("visual.positional_embedding")[0], "visual.positional_embedding");
            vision = new VisionConfig(
                VisionConfig.Vit,
                ImageSize: grid * patch,
                Channels: (int)conv[1],
                PatchSize: patch,
                Width: width,
                Layers: CountIndices(shapes, "visual.transformer.resblocks."),
                Heads: Math.Max(1, width / headWidth),
                MlpRatio: MlpRatio(Shape("visual.transformer.resblocks.0.mlp.c_fc.weight"), width),
                Activation: activation);
        }
        else
        {
            int width = (int)Shape("visual.layer1.0.conv1.weight")[0];
            int grid = GridSide(Shape("visual.attnpool.positional_embedding")[0], "visual.attnpool.positional_embedding");
            vision = new VisionConfig(
                VisionConfig.ResNet,
                ImageSize: grid * VisionConfig.ResNetDownsampling,
                Channels: (int)Shape("visual.conv1.weight")[1],
                Width: width,
                ResNetLayers: [.. Enumerable.Range(1, 4).Select(stage => CountIndices(shapes, $"visual.layer{stage}."))],
                Heads: Math.Max(1, width * VisionConfig.ResNetDownsampling / headWidth),
                Pool: VisionConfig.AttentionPool);
        }

        var config = new ClipConfig(name, embedDim, vision, text);
        config.Validate();
        return config;
    }

    /// <summary>How many distinct N appear in names <c>prefix + N + "."…</c>.</summary>
    private static int CountIndices(IReadOnlyDictionary<string, long[]> shapes, string prefix) =>
        shapes.Keys
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Select(k => k[prefix.Length..].Split('.')[0])
            .Where(n => int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Distinct()
            .Count();

    private static int GridSide(long positions, string key)
    {
        // positions = grid² + 1 (the class or mean token comes first).
        int side = (int)Math.Round(Math.Sqrt(positions - 1));
        return side * side == positions - 1
            ? side
            : throw new PretrainedImportException($"{key} has {positions} positions, not a square grid plus one");
    }

    private static double MlpRatio(long[] fcWeight, int width) => (double)fcWeight[0] / width;
}

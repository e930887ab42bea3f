using DistClip.Config;
namespace DistClip.Model.Tests;

/// <summary>Small configs for each tower, so shape and mask tests take milliseconds.</summary>
internal static class TinyConfigs
{
    public static readonly TextConfig CausalText = new(TextConfig.Causal, VocabSize: 100, ContextLength: 8, Width: 32, Layers: 2, Heads: 4);

    public static readonly VisionConfig Vit = new(VisionConfig.Vit, ImageSize: 28, Channels: 1, PatchSize: 7, Width: 32, Layers: 2, Heads: 4);

    public static readonly VisionConfig ResNetAttention = new(
        VisionConfig.ResNet, ImageSize: 64, Channels: 3, Width: 8, ResNetLayers: [1, 2, 1, 1], Heads: 4, Pool: VisionConfig.AttentionPool);

    public static readonly VisionConfig Mlp = new(VisionConfig.Mlp, ImageSize: 28, Channels: 1, HiddenDim: 16);

    public static ClipConfig With(VisionConfig vision, TextConfig? text = null) =>
        new("test-tiny", EmbedDim: 24, vision, text ?? CausalText);
}

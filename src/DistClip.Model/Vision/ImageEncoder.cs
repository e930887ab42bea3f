using DistClip.Config;
using static TorchSharp.torch;

namespace DistClip.Model.Vision;

internal static class ImageEncoder
{
    /// <summary>The image tower a config names; maps [N, C, H, W] to [N, embedDim].</summary>
    public static nn.Module<Tensor, Tensor> Create(VisionConfig config, int embedDim) => config.Type switch
    {
        VisionConfig.Vit => new VisionTransformer(config, embedDim),
        VisionConfig.ResNet => new ModifiedResNet(config, embedDim),
        VisionConfig.Mlp => new MlpImageEncoder(config, embedDim),
        _ => throw new ConfigException("vision.type", $"'{config.Type}' is not a known image tower"),
    };
}

using DistClip.Config;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Vision;

/// <summary>The smallest image tower: flatten → Linear → ReLU → Linear. For fast tests and smoke runs.</summary>
internal sealed class MlpImageEncoder : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public MlpImageEncoder(VisionConfig config, int embedDim)
        : base(nameof(MlpImageEncoder))
    {
        fc1 = nn.Linear((long)config.Channels * config.ImageSize * config.ImageSize, config.HiddenDim);
        fc2 = nn.Linear(config.HiddenDim, embedDim);
        RegisterComponents();
    }

    /// <param name="images">[N, C, H, W]</param>
    /// <returns>[N, E]</returns>
    public override Tensor forward(Tensor images) =>
        fc2.call(nn.functional.relu(fc1.call(images.flatten(1)))); // [N, C·H·W] → [N, hidden] → [N, E]
}

using DistClip.Model.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Vision;

/// <summary>
/// CLIP's ResNet bottleneck: 1×1, 3×3, then an average pool for the stride (anti-aliased, instead
/// of a strided convolution), 1×1 expanding 4×. The shortcut pools too before its 1×1 convolution.
/// </summary>
internal sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly nn.Module<Tensor, Tensor> avgpool;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Sequential? downsample;

    public Bottleneck(int inplanes, int planes, int stride)
        : base(nameof(Bottleneck))
    {
        conv1 = nn.Conv2d(inplanes, planes, 1, bias: false);
        bn1 = nn.BatchNorm2d(planes);
        conv2 = nn.Conv2d(planes, planes, 3, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(planes);
        avgpool = stride > 1 ? nn.AvgPool2d(stride) : nn.Identity();
        conv3 = nn.Conv2d(planes, planes * Expansion, 1, bias: false);
        bn3 = nn.BatchNorm2d(planes * Expansion);
        // CLIP zero-initialises the last BN of each block, so every block starts as the identity.
        Init.Zeros_(bn3.weight);
        if (stride > 1 || inplanes != planes * Expansion)
        {
            // OpenAI's names: "-1" (the pool, no parameters), "0" (conv), "1" (BN).
            downsample = nn.Sequential(
                ("-1", (nn.Module<Tensor, Tensor>)nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * Expansion, 1, bias: false)),
                ("1", nn.BatchNorm2d(planes * Expansion)));
        }

        RegisterComponents();
    }

    /// <param name="x">[N, inplanes, H, W]</param>
    /// <returns>[N, 4·planes, H/stride, W/stride]</returns>
    public override Tensor forward(Tensor x)
    {
        var y = nn.functional.relu(bn1.call(conv1.call(x)));
        y = nn.functional.relu(bn2.call(conv2.call(y)));
        y = bn3.call(conv3.call(avgpool.call(y)));
        var identity = downsample is null ? x : downsample.call(x);
        return nn.functional.relu(y + identity);
    }
}

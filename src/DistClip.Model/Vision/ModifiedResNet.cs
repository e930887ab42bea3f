using DistClip.Config;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Vision;

/// <summary>
/// CLIP's ModifiedResNet: a three-convolution stem with an average pool, four bottleneck stages,
/// then attention pooling (or, with pool "average", global mean pooling and a linear head).
/// </summary>
internal sealed class ModifiedResNet : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly AvgPool2d avgpool;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly AttentionPool2d? attnpool;
    private readonly Linear? head;

    public ModifiedResNet(VisionConfig config, int embedDim)
        : base(nameof(ModifiedResNet))
    {
        var width = config.Width;
        var depths = config.ResNetLayers!;
        conv1 = nn.Conv2d(config.Channels, width / 2, 3, stride: 2, padding: 1, bias: false);
        bn1 = nn.BatchNorm2d(width / 2);
        conv2 = nn.Conv2d(width / 2, width / 2, 3, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(width / 2);
        conv3 = nn.Conv2d(width / 2, width, 3, padding: 1, bias: false);
        bn3 = nn.BatchNorm2d(width);
        avgpool = nn.AvgPool2d(2);

        var inplanes = width;
        layer1 = Stage(ref inplanes, width, depths[0], stride: 1);
        layer2 = Stage(ref inplanes, width * 2, depths[1], stride: 2);
        layer3 = Stage(ref inplanes, width * 4, depths[2], stride: 2);
        layer4 = Stage(ref inplanes, width * 8, depths[3], stride: 2);

        if (config.Pool == VisionConfig.AttentionPool)
        {
            var spatial = config.ImageSize / VisionConfig.ResNetDownsampling;
            attnpool = new AttentionPool2d(spatial, config.ResNetOutputWidth, config.Heads, embedDim);
        }
        else
        {
            head = nn.Linear(config.ResNetOutputWidth, embedDim);
        }

        RegisterComponents();
    }

    /// <param name="images">[N, C, H, W]</param>
    /// <returns>[N, E]</returns>
    public override Tensor forward(Tensor images)
    {
        var x = F.relu(bn1.call(conv1.call(images))); // [N, w/2, H/2, W/2]
        x = F.relu(bn2.call(conv2.call(x)));
        x = F.relu(bn3.call(conv3.call(x))); // [N, w, H/2, W/2]
        x = avgpool.call(x); // [N, w, H/4, W/4]
        x = layer4.call(layer3.call(layer2.call(layer1.call(x)))); // [N, 32w, H/32, W/32]
        return attnpool is not null
            ? attnpool.call(x)
            : head!.call(x.mean([2, 3])); // [N, 32w] → [N, E]
    }

    private static Sequential Stage(ref int inplanes, int planes, int blocks, int stride)
    {
        var stage = new List<nn.Module<Tensor, Tensor>> { new Bottleneck(inplanes, planes, stride) };
        inplanes = planes * Bottleneck.Expansion;
        for (var i = 1; i < blocks; i++)
        {
            stage.Add(new Bottleneck(inplanes, planes, stride: 1));
        }

        return nn.Sequential(stage);
    }
}

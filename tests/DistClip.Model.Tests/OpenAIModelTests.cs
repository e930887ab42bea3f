using DistClip.Config;
using static TorchSharp.torch;

namespace DistClip.Model.Tests;

/// <summary>The OpenAI-sized configs: exact parameter counts, OpenAI's state-dict names, and a forward pass on CPU.</summary>
public class OpenAIModelTests
{
    [Fact]
    public void VitB32MatchesOpenAIAndEncodesABatchOfTwo()
    {
        using var model = new ClipModel(ClipConfig.Load("vit-b-32"));
        Assert.Equal(151_277_313, model.ParameterCount());
        AssertHasNames(
            model,
            ("visual.conv1.weight", [768, 3, 32, 32]),
            ("visual.class_embedding", [768]),
            ("visual.positional_embedding", [50, 768]),
            ("visual.ln_pre.weight", [768]),
            ("visual.transformer.resblocks.11.attn.in_proj_weight", [2304, 768]),
            ("visual.transformer.resblocks.0.attn.out_proj.bias", [768]),
            ("visual.transformer.resblocks.0.mlp.c_fc.weight", [3072, 768]),
            ("visual.transformer.resblocks.0.mlp.c_proj.weight", [768, 3072]),
            ("visual.transformer.resblocks.0.ln_2.bias", [768]),
            ("visual.ln_post.weight", [768]),
            ("visual.proj", [768, 512]),
            ("token_embedding.weight", [49408, 512]),
            ("positional_embedding", [77, 512]),
            ("transformer.resblocks.11.ln_1.weight", [512]),
            ("ln_final.bias", [512]),
            ("text_projection", [512, 512]),
            ("logit_scale", []));
        AssertEncodesTwo(model, 512);
    }

    [Fact]
    public void Rn50MatchesOpenAIAndEncodesABatchOfTwo()
    {
        using var model = new ClipModel(ClipConfig.Load("rn50"));
        Assert.Equal(102_007_137, model.ParameterCount()); // OpenAI's RN50 CLIP
        AssertHasNames(
            model,
            ("visual.conv1.weight", [32, 3, 3, 3]),
            ("visual.bn3.weight", [64]),
            ("visual.layer1.0.conv1.weight", [64, 64, 1, 1]),
            ("visual.layer1.0.downsample.0.weight", [256, 64, 1, 1]),
            ("visual.layer1.0.downsample.1.bias", [256]),
            ("visual.layer4.2.conv3.weight", [2048, 512, 1, 1]),
            ("visual.attnpool.positional_embedding", [50, 2048]),
            ("visual.attnpool.q_proj.weight", [2048, 2048]),
            ("visual.attnpool.c_proj.weight", [1024, 2048]),
            ("text_projection", [512, 1024]));
        Assert.Contains("visual.layer1.0.bn1.running_mean", model.state_dict().Keys);
        AssertEncodesTwo(model, 1024);
    }

    private static void AssertHasNames(ClipModel model, params (string Name, long[] Shape)[] expected)
    {
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        foreach (var (name, shape) in expected)
        {
            Assert.True(parameters.TryGetValue(name, out var actual), $"missing parameter {name}");
            Assert.Equal(shape, actual);
        }
    }

    private static void AssertEncodesTwo(ClipModel model, long embedDim)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        var (vision, text) = (model.Config.Vision, model.Config.Text);
        var image = model.EncodeImage(randn(2, vision.Channels, vision.ImageSize, vision.ImageSize));
        var tokens = randint(text.VocabSize, [2, text.ContextLength]);
        var caption = model.EncodeText(tokens, tensor(new long[] { 5, text.ContextLength }));
        Assert.Equal([2L, embedDim], image.shape);
        Assert.Equal([2L, embedDim], caption.shape);
        Assert.True(image.isfinite().all().item<bool>() && caption.isfinite().all().item<bool>(), "features must be finite");
    }
}

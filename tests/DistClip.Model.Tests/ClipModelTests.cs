using DistClip.Config;
using DistClip.Model.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model.Tests;

public class ClipModelTests
{
    [Fact]
    public void ClipTinyHasTheSpecifiedParameterCount()
    {
        using var model = new ClipModel(ClipConfig.Load("clip-tiny"));
        Assert.Equal(19_337_729, model.ParameterCount());
    }

    [Fact]
    public void TheSameSeedBuildsTheSameModelAndAnotherSeedDoesNot()
    {
        var config = ClipConfig.Load("clip-micro");
        using var a = Build(config, seed: 7);
        using var b = Build(config, seed: 7);
        using var c = Build(config, seed: 8);
        var (pa, pb, pc) = (a.parameters().ToArray(), b.parameters().ToArray(), c.parameters().ToArray());
        Assert.All(Enumerable.Range(0, pa.Length), i => Assert.True(pa[i].Equals(pb[i]), $"parameter {i} differs under one seed"));
        Assert.Contains(Enumerable.Range(0, pa.Length), i => !pa[i].Equals(pc[i]));
    }

    [Fact]
    public void LogitScaleStartsAtLnOneOverPointZeroSevenAndIsClampedAtLnHundred()
    {
        using var model = new ClipModel(ClipConfig.Load("clip-micro"));
        Assert.Empty(model.LogitScale.shape);
        Assert.Equal(Math.Log(1 / 0.07), model.LogitScale.item<float>(), 5);

        model.ClampLogitScale();
        Assert.Equal(Math.Log(1 / 0.07), model.LogitScale.item<float>(), 5);

        using (no_grad())
        {
            model.LogitScale.fill_(10.0);
        }

        model.ClampLogitScale();
        Assert.Equal(Math.Log(100), model.LogitScale.item<float>(), 5);
        Assert.True(model.LogitScale.requires_grad, "clamping must leave t a trainable leaf");
    }

    [Fact]
    public void AModelBuiltInsideADisposeScopeOutlivesIt()
    {
        ClipModel model;
        using (NewDisposeScope())
        {
            model = new ClipModel(ClipConfig.Load("clip-micro"));
        }

        using (model)
        {
            Assert.All(model.named_parameters(), p => Assert.False(p.parameter.IsInvalid, $"{p.name} was disposed with the scope"));
            Assert.Equal(3_706_433, model.ParameterCount());
        }
    }

    [Fact]
    public void AFewAdamStepsOnOneBatchLowerTheLossAndReachEveryParameter()
    {
        using var model = Build(ClipConfig.Load("clip-micro"), seed: 3);
        using var optimizer = optim.Adam(model.parameters(), lr: 1e-3);
        var (images, tokens, lengths) = (randn(8, 1, 28, 28), randint(50257, [8, 16]), randint(2, 17, [8]));
        var losses = new List<float>();
        for (var step = 0; step < 6; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var image = Features.Normalize(model.EncodeImage(images));
            var text = Features.Normalize(model.EncodeText(tokens, lengths));
            var loss = ContrastiveLoss.Compute(image, text, model.LogitScale);
            loss.backward();
            if (step == 0)
            {
                Assert.All(model.named_parameters(), p => Assert.True(p.parameter.grad is not null, $"{p.name} got no gradient"));
            }

            optimizer.step();
            model.ClampLogitScale();
            losses.Add(loss.item<float>());
        }

        Assert.True(losses[^1] < losses[0] * 0.8, $"loss should fall on a memorisable batch: {string.Join(", ", losses)}");
    }

    [Fact]
    public void MovingTheModelToAnotherDtypeKeepsEveryParameterInUse()
    {
        using var scope = NewDisposeScope();
        using var model = new ClipModel(TinyConfigs.With(TinyConfigs.Vit, TinyConfigs.CausalText with { Type = TextConfig.Bert }));
        model.to(ScalarType.Float64);

        // Module.to() replaces Parameter objects; the fields the forward pass reads must follow.
        Assert.Equal(ScalarType.Float64, model.LogitScale.dtype);
        var image = model.EncodeImage(randn([2, 1, 28, 28], ScalarType.Float64));
        var text = model.EncodeText(randint(100, [2, 8]), tensor(new long[] { 4, 8 }));
        Assert.Equal(ScalarType.Float64, image.dtype);
        Assert.Equal(ScalarType.Float64, text.dtype);
    }

    [Fact]
    public void OnlyMatricesAndKernelsAreInTheWeightDecayGroup()
    {
        using var model = new ClipModel(ClipConfig.Load("clip-micro"));
        var (decay, noDecay) = model.WeightDecayGroups();
        Assert.Equal(model.ParameterCount(), decay.Concat(noDecay).Sum(p => p.numel()));
        Assert.All(decay, p => Assert.True(p.ndim >= 2));
        Assert.Contains(noDecay, p => ReferenceEquals(p, model.LogitScale));
        // fc1, fc2, token and positional embeddings, text_projection, in_proj, out_proj, c_fc, c_proj.
        Assert.Equal(9, decay.Count);
    }

    private static ClipModel Build(ClipConfig config, long seed)
    {
        manual_seed(seed);
        return new ClipModel(config);
    }
}

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

    [Theory]
    [InlineData(TextConfig.DefaultTokenInitStd)]
    [InlineData(1.0)]
    public void TheTokenTableIsDrawnWithTheConfiguredStandardDeviation(double std)
    {
        manual_seed(3);
        var text = TinyConfigs.CausalText with { VocabSize = 2000, Width = 64, TokenInitStd = std };
        using var model = new ClipModel(TinyConfigs.With(TinyConfigs.Vit, text));
        using var table = model.TokenEmbedding.detach();
        Assert.Equal(0.0, table.mean().item<float>(), 2 * std / Math.Sqrt(2000 * 64) * 4);
        Assert.Equal(std, table.std().item<float>(), std * 0.02);
    }

    [Fact]
    public void Cutting_the_image_tower_into_segments_changes_no_gradient_bit()
    {
        manual_seed(11);
        var vision = TinyConfigs.Vit with { Layers = 3 };
        using var model = new ClipModel(TinyConfigs.With(vision));
        using var scope = NewDisposeScope();
        var images = randn(6, 1, 28, 28);
        var upstream = randn(6, 24); // dL/d(features), as the loss stage hands it over
        var image = model.TowerParameters().Image;

        torch.autograd.backward([Features.Normalize(model.EncodeImage(images))], [upstream]);
        var whole = image.Select(p => p.grad!.clone()).ToList();
        model.zero_grad();

        var cuts = new BackwardCuts();
        var features = Features.Normalize(model.EncodeImage(images, cuts));
        var segments = model.ImageSegments();
        Assert.Equal(2 * vision.Layers, cuts.Count);
        Assert.Equal(cuts.Count + 1, segments.Count);

        // Every image parameter in exactly one segment; each segment complete when its turn is reported, and untouched before.
        Assert.Equal(image.Count, segments.Sum(s => s.Count));
        Assert.Equal(image.Count, segments.SelectMany(s => s).Select(p => p.Handle).Distinct().Count());
        var done = new List<int>();
        cuts.Backward(features, upstream, k =>
        {
            done.Add(k);
            Assert.All(segments[k], p => Assert.NotNull(p.grad));
            foreach (var below in segments.Skip(k + 1).SelectMany(s => s))
            {
                Assert.True(below.grad is null || below.grad.count_nonzero().item<long>() == 0, "a segment below got its gradient early");
            }
        });
        Assert.Equal(Enumerable.Range(0, segments.Count), done);
        for (int i = 0; i < image.Count; i++)
        {
            Assert.True(whole[i].equal(image[i].grad!).all().item<bool>(), $"image parameter {i} differs from the uncut graph's");
        }
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
            using var ten = 10.0.ToScalar();
            model.LogitScale.fill_(ten);
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

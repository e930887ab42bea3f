using DistClip.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model.Tests;

public class EncoderTests
{
    public static TheoryData<string> ImageTowers => ["vit", "resnet-attention", "resnet-average", "mlp"];

    [Theory]
    [MemberData(nameof(ImageTowers))]
    public void EachImageTowerMapsABatchToEmbeddings(string tower)
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var vision = tower switch
        {
            "vit" => TinyConfigs.Vit,
            "resnet-attention" => TinyConfigs.ResNetAttention,
            "resnet-average" => TinyConfigs.ResNetAttention with { Pool = VisionConfig.AveragePool },
            _ => TinyConfigs.Mlp,
        };
        using var model = new ClipModel(TinyConfigs.With(vision));
        var images = randn(3, vision.Channels, vision.ImageSize, vision.ImageSize);

        var features = model.EncodeImage(images);

        Assert.Equal([3L, 24L], features.shape);
        Assert.True(features.isfinite().all().item<bool>(), "features must be finite");
    }

    [Theory]
    [InlineData(TextConfig.Causal, 8)]
    [InlineData(TextConfig.Causal, 5)]
    [InlineData(TextConfig.Bert, 8)]
    [InlineData(TextConfig.Bert, 5)]
    public void EachTextTowerMapsTokensToEmbeddingsForAnyLengthUpToTheContext(string type, int length)
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var model = new ClipModel(TinyConfigs.With(TinyConfigs.Mlp, TinyConfigs.CausalText with { Type = type }));
        var tokens = randint(100, [3, length]);
        var lengths = tensor(new long[] { 1, length / 2, length });

        var features = model.EncodeText(tokens, lengths);

        Assert.Equal([3L, 24L], features.shape);
        Assert.True(features.isfinite().all().item<bool>(), "features must be finite");
    }

    [Fact]
    public void CausalOutputIgnoresTokensAfterEndOfTextButNotBefore()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var model = new ClipModel(TinyConfigs.With(TinyConfigs.Mlp));
        var tokens = randint(100, [2, 8]);
        var lengths = tensor(new long[] { 3, 6 });
        var reference = model.EncodeText(tokens, lengths);

        var afterEot = tokens.clone();
        afterEot[0, 3..] = randint(100, [5]);
        afterEot[1, 6..] = randint(100, [2]);
        AssertClose(reference, model.EncodeText(afterEot, lengths));

        var beforeEot = tokens.clone();
        using var one = 1.ToScalar();
        using var hundred = 100.ToScalar();
        beforeEot[0, 1] = tokens[0, 1].add(one).remainder(hundred);
        Assert.False(reference[0].allclose(model.EncodeText(beforeEot, lengths)[0]), "a token before EOT must change the output");
    }

    [Fact]
    public void BertOutputIgnoresPaddingButSeesEveryRealToken()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var model = new ClipModel(TinyConfigs.With(TinyConfigs.Mlp, TinyConfigs.CausalText with { Type = TextConfig.Bert }));
        var tokens = randint(100, [2, 8]);
        var lengths = tensor(new long[] { 3, 6 });
        var reference = model.EncodeText(tokens, lengths);

        var padding = tokens.clone();
        padding[0, 3..] = randint(100, [5]);
        padding[1, 6..] = randint(100, [2]);
        AssertClose(reference, model.EncodeText(padding, lengths));

        // Pooling is at position 0, so only bidirectional attention lets the last real token matter.
        var lastReal = tokens.clone();
        using var increment = 1.ToScalar();
        using var modulus = 100.ToScalar();
        lastReal[0, 2] = tokens[0, 2].add(increment).remainder(modulus);
        Assert.False(reference[0].allclose(model.EncodeText(lastReal, lengths)[0]), "the last real token must change the output");
    }

    [Fact]
    public void WrongInputShapesAreRefusedWithTheExpectedShape()
    {
        using var scope = NewDisposeScope();
        using var model = new ClipModel(TinyConfigs.With(TinyConfigs.Mlp));
        var e = Assert.Throws<ArgumentException>(() => model.EncodeImage(zeros(2, 3, 28, 28)));
        Assert.Contains("[N, 1, 28, 28]", e.Message);
        Assert.Throws<ArgumentException>(() => model.EncodeText(zeros([2, 9], ScalarType.Int64), tensor(new long[] { 9, 9 })));
        Assert.Throws<ArgumentException>(() => model.EncodeText(zeros([2, 8], ScalarType.Int64), tensor(new[] { 8, 8 })));
    }

    private static void AssertClose(Tensor expected, Tensor actual)
    {
        var difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference < 1e-6f, $"expected identical features, max difference {difference}");
    }
}

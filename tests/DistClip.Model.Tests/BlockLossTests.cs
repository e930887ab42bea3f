using DistClip.Model.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model.Tests;

/// <summary>
/// The tiled losses that training runs (<see cref="SoftmaxRows"/>, <see cref="SigmoidPairs"/>) against
/// their definitions as one float64 autograd expression over the whole matrix: split into row blocks
/// as ranks would hold them (one of them empty) and tiled by chunks that do and do not divide B.
/// </summary>
public class BlockLossTests
{
    private const int B = 23;
    private const int D = 8;
    private static readonly int[] Ranks = [7, 0, 9, 7]; // rows per "rank"

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(23)]
    [InlineData(2048)]
    public void Softmax_row_blocks_give_the_whole_matrix_loss_and_gradients(int chunk)
    {
        using var scope = NewDisposeScope();
        var (images, texts) = (UnitRows(seed: 1), UnitRows(seed: 2));
        const double t = 2.1;
        var expected = SoftmaxReference(images, texts, t);

        var dImages = zeros(B, D);
        var dTexts = zeros(B, D);
        using var totals = new LossTotals(CPU);
        var i2t = zeros(1, dtype: ScalarType.Int64);
        var t2i = zeros(1, dtype: ScalarType.Int64);
        var scale = tensor(Math.Exp(t), dtype: ScalarType.Float32);
        double weight = 1.0 / (2 * B);
        foreach (var (offset, count) in Blocks())
        {
            SoftmaxRows.Accumulate(images.narrow(0, offset, count), texts, offset, scale, weight, chunk, dImages.narrow(0, offset, count), dTexts, totals, i2t);
            SoftmaxRows.Accumulate(texts.narrow(0, offset, count), images, offset, scale, weight, chunk, dTexts.narrow(0, offset, count), dImages, totals, t2i);
        }

        AssertClose("loss", expected.Loss, totals.LossSum.item<double>() * weight);
        AssertClose("dL/dt", expected.Scale, totals.ScaleGradient.item<double>());
        AssertClose("dL/d(images)", expected.Images, dImages);
        AssertClose("dL/d(texts)", expected.Texts, dTexts);
        var (rows, columns) = ContrastiveLoss.Accuracy(images.matmul(texts.t()));
        Assert.Equal(rows * B, i2t.item<long>(), 6);
        Assert.Equal(columns * B, t2i.item<long>(), 6);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(2048)]
    public void Sigmoid_blocks_give_the_whole_matrix_loss_and_gradients(int chunk)
    {
        using var scope = NewDisposeScope();
        var (images, texts) = (UnitRows(seed: 3), UnitRows(seed: 4));
        const double t = 2.3;
        const double bias = -1.5;
        var expected = SigmoidReference(images, texts, t, bias);

        var dImages = zeros(B, D);
        var dTexts = zeros(B, D);
        using var totals = new LossTotals(CPU);
        var scale = tensor(Math.Exp(t), dtype: ScalarType.Float32);
        var biasTensor = tensor(bias, dtype: ScalarType.Float32);
        var imageBest = (full(B, Scalars.NegativeInfinity), zeros(B, dtype: ScalarType.Int64));
        var textBest = (full(B, Scalars.NegativeInfinity), zeros(B, dtype: ScalarType.Int64));
        var blocks = Blocks().ToArray();
        // Every (image block, text block) pair, texts visiting in ring order as they would travel.
        for (int r = 0; r < blocks.Length; r++)
        {
            for (int hop = 0; hop < blocks.Length; hop++)
            {
                int j = ((r - hop) % blocks.Length + blocks.Length) % blocks.Length;
                var (qo, qn) = blocks[r];
                var (ko, kn) = blocks[j];
                SigmoidPairs.Accumulate(images.narrow(0, qo, qn), texts.narrow(0, ko, kn), r == j ? 0 : null, scale, biasTensor, 1.0 / B, chunk,
                    dImages.narrow(0, qo, qn), dTexts.narrow(0, ko, kn), totals,
                    (imageBest.Item1.narrow(0, qo, qn), imageBest.Item2.narrow(0, qo, qn)),
                    (textBest.Item1.narrow(0, ko, kn), textBest.Item2.narrow(0, ko, kn)), qo, ko);
            }
        }

        AssertClose("loss", expected.Loss, totals.LossSum.item<double>() / B);
        AssertClose("dL/dt", expected.Scale, totals.ScaleGradient.item<double>());
        AssertClose("dL/d(bias)", expected.Bias, totals.BiasGradient.item<double>());
        AssertClose("dL/d(images)", expected.Images, dImages);
        AssertClose("dL/d(texts)", expected.Texts, dTexts);
        var logits = images.matmul(texts.t());
        Assert.Equal(logits.argmax(1).data<long>().ToArray(), imageBest.Item2.data<long>().ToArray());
        Assert.Equal(logits.argmax(0).data<long>().ToArray(), textBest.Item2.data<long>().ToArray());
    }

    [Fact]
    public void On_tied_logits_the_first_column_wins_across_tiles_as_argmax_over_the_row_does()
    {
        using var scope = NewDisposeScope();
        // Every text is the same vector: all logits of a row tie; argmax over a row is column 0.
        var images = UnitRows(seed: 5);
        var texts = UnitRows(seed: 6).narrow(0, 0, 1).expand(B, D).contiguous();
        var i2t = zeros(1, dtype: ScalarType.Int64);
        using var totals = new LossTotals(CPU);
        SoftmaxRows.Accumulate(images, texts, 0, tensor(1f), 1.0, chunk: 4, zeros(B, D), zeros(B, D), totals, i2t);
        Assert.Equal(1, i2t.item<long>()); // only row 0, whose positive is column 0
    }

    [Fact]
    public void A_positive_column_outside_the_keys_is_refused()
    {
        using var scope = NewDisposeScope();
        var images = UnitRows(seed: 7);
        using var totals = new LossTotals(CPU);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            SoftmaxRows.Accumulate(images.narrow(0, 0, 5), images.narrow(0, 0, 10), 6, tensor(1f), 1.0, 4, zeros(5, D), zeros(10, D), totals, zeros(1, dtype: ScalarType.Int64)));
        Assert.Contains("rows [6, 11)", error.Message);
    }

    private static IEnumerable<(long Offset, long Rows)> Blocks()
    {
        long offset = 0;
        foreach (int rows in Ranks)
        {
            yield return (offset, rows);
            offset += rows;
        }
    }

    private sealed record Expected(double Loss, double Scale, double Bias, Tensor Images, Tensor Texts);

    private static Expected SoftmaxReference(Tensor images, Tensor texts, double t)
    {
        var (i, x, scale) = Leaves(images, texts, t);
        var loss = ContrastiveLoss.Compute(i, x, scale);
        loss.backward();
        return new Expected(loss.item<double>(), scale.grad!.item<double>(), 0, i.grad!, x.grad!);
    }

    private static Expected SigmoidReference(Tensor images, Tensor texts, double t, double bias)
    {
        var (i, x, scale) = Leaves(images, texts, t);
        var b = tensor(bias, dtype: ScalarType.Float64, requires_grad: true);
        var loss = SigmoidLoss.Compute(i, x, scale, b);
        loss.backward();
        return new Expected(loss.item<double>(), scale.grad!.item<double>(), b.grad!.item<double>(), i.grad!, x.grad!);
    }

    /// <summary>The float32 features as float64 leaves: the reference sees exactly the tiled path's inputs.</summary>
    private static (Tensor Images, Tensor Texts, Tensor Scale) Leaves(Tensor images, Tensor texts, double t) =>
        (images.to(ScalarType.Float64).requires_grad_(), texts.to(ScalarType.Float64).requires_grad_(),
         tensor(t, dtype: ScalarType.Float64, requires_grad: true));

    private static void AssertClose(string what, double expected, double actual) =>
        Assert.True(Math.Abs(actual - expected) <= 1e-5 * Math.Max(1e-3, Math.Abs(expected)),
            $"{what}: expected {expected:E8}, got {actual:E8}");

    /// <summary>Tolerance relative to the tensor's largest magnitude.</summary>
    private static void AssertClose(string what, Tensor expected, Tensor actual)
    {
        double scale = expected.abs().max().item<double>();
        double error = (actual.to(ScalarType.Float64) - expected).abs().max().item<double>();
        Assert.True(scale > 1e-4, $"{what}: the reference is ~0 ({scale:E2}); the test would prove nothing");
        Assert.True(error <= 1e-5 * scale, $"{what}: worst difference {error:E3} against the reference's largest magnitude {scale:E3}; expected <= 1e-5 of it");
    }

    private static Tensor UnitRows(int seed)
    {
        var generator = new Generator((ulong)seed);
        return nn.functional.normalize(randn(B, D, generator: generator), p: 2, dim: 1);
    }
}

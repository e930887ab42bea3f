using DistClip.Model.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model.Tests;

public class ContrastiveLossTests
{
    private const int B = 5;
    private const int E = 4;
    private const double T = 1.3;

    [Fact]
    public void LossAndTemperatureGradientMatchADoublePrecisionReference()
    {
        using var scope = NewDisposeScope();
        var (imageRows, textRows) = (RandomUnitRows(seed: 1), RandomUnitRows(seed: 2));
        var image = tensor(imageRows.SelectMany(r => r).ToArray(), B, E);
        var text = tensor(textRows.SelectMany(r => r).ToArray(), B, E);
        var t = tensor((float)T, requires_grad: true); // a leaf scalar, like the model's parameter

        var loss = ContrastiveLoss.Compute(image, text, t);
        loss.backward();

        var cos = Cosines(imageRows, textRows);
        var expected = ReferenceLoss(cos, T);
        var expectedGrad = ReferenceTemperatureGradient(cos, T);
        var finiteDifference = (ReferenceLoss(cos, T + 1e-6) - ReferenceLoss(cos, T - 1e-6)) / 2e-6;
        Assert.True(Math.Abs(expectedGrad - finiteDifference) < 1e-7, $"hand-derived {expectedGrad} vs finite difference {finiteDifference}");

        var actual = loss.item<float>();
        Assert.True(Math.Abs(actual - expected) <= 1e-6 * Math.Abs(expected), $"loss: expected {expected}, got {actual}");
        var grad = t.grad!.item<float>();
        Assert.True(Math.Abs(grad - expectedGrad) <= 1e-5, $"d loss / d t: expected {expectedGrad}, got {grad}");
    }

    [Fact]
    public void LogitsAreTheScaledCosineMatrixWithImagesAsRows()
    {
        using var scope = NewDisposeScope();
        var image = Features.Normalize(tensor(new float[] { 1, 0, 0, 1 }, 2, 2));
        var text = Features.Normalize(tensor(new float[] { 1, 0, 3, 4 }, 2, 2));
        var (_, logits) = ContrastiveLoss.ComputeWithLogits(image, text, tensor(MathF.Log(10f)));

        // cos(image0, text1) = 0.6, cos(image1, text1) = 0.8, cos(image1, text0) = 0.
        var expected = new[] { 10f, 6f, 0f, 8f };
        Assert.Equal(expected, logits.data<float>().ToArray(), new FloatTolerance(1e-5f));
        Assert.Equal((1.0, 1.0), ContrastiveLoss.Accuracy(logits));
    }

    [Fact]
    public void MatchingPairsWithALargeScaleGiveANearZeroLoss()
    {
        using var scope = NewDisposeScope();
        var features = eye(B); // B orthonormal rows: each image matches only its own text
        var loss = ContrastiveLoss.Compute(features, features, tensor(MathF.Log(100f))).item<float>();
        Assert.True(loss < 1e-6, $"expected ~0 (4·e^-100), got {loss}");
    }

    private static double[][] Cosines(float[][] image, float[][] text) =>
        [.. image.Select(i => text.Select(x => i.Zip(x, (a, b) => (double)a * b).Sum()).ToArray())];

    private static double ReferenceLoss(double[][] cos, double t)
    {
        var scale = Math.Exp(t);
        double rows = 0, columns = 0;
        for (var i = 0; i < B; i++)
        {
            rows += LogSumExp(Enumerable.Range(0, B).Select(j => scale * cos[i][j])) - scale * cos[i][i];
            columns += LogSumExp(Enumerable.Range(0, B).Select(j => scale * cos[j][i])) - scale * cos[i][i];
        }

        return (rows / B + columns / B) / 2;
    }

    /// <summary>d/dt of the loss: exp(t)·(E_softmax[cos] − cos_ii), averaged over rows and columns.</summary>
    private static double ReferenceTemperatureGradient(double[][] cos, double t)
    {
        var scale = Math.Exp(t);
        double sum = 0;
        for (var i = 0; i < B; i++)
        {
            sum += SoftmaxMean(Enumerable.Range(0, B).Select(j => cos[i][j]).ToArray(), scale) - cos[i][i];
            sum += SoftmaxMean(Enumerable.Range(0, B).Select(j => cos[j][i]).ToArray(), scale) - cos[i][i];
        }

        return scale * sum / (2 * B);
    }

    private static double SoftmaxMean(double[] values, double scale)
    {
        var max = values.Max();
        var weights = values.Select(v => Math.Exp(scale * (v - max))).ToArray();
        return weights.Zip(values, (w, v) => w * v).Sum() / weights.Sum();
    }

    private static double LogSumExp(IEnumerable<double> values)
    {
        var list = values.ToArray();
        var max = list.Max();
        return max + Math.Log(list.Sum(v => Math.Exp(v - max)));
    }

    /// <summary>Rows normalised in double, then rounded to float: the reference uses exactly the values the tensors hold.</summary>
    private static float[][] RandomUnitRows(int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, B).Select(_ =>
        {
            var row = Enumerable.Range(0, E).Select(_ => random.NextDouble() * 2 - 1).ToArray();
            var norm = Math.Sqrt(row.Sum(v => v * v));
            return row.Select(v => (float)(v / norm)).ToArray();
        })];
    }

    private sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(float obj) => 0;
    }
}

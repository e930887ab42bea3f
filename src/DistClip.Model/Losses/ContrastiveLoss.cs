using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Losses;

/// <summary>
/// CLIP's symmetric InfoNCE loss over one (global) batch of matching image–text pairs, as one
/// autograd expression over the whole [B, B] matrix: the definition. Training computes the same loss
/// and its gradient in row blocks and tiles (<see cref="SoftmaxRows"/>); tests hold the two equal.
/// </summary>
public static class ContrastiveLoss
{
    /// <param name="image">[B, E] L2-normalised; row i pairs with row i of <paramref name="text"/>.</param>
    /// <param name="text">[B, E] L2-normalised.</param>
    /// <param name="logitScale">The scalar parameter t; logits use exp(t).</param>
    /// <returns>Scalar: mean of the image→text and text→image cross-entropies against the diagonal.</returns>
    public static Tensor Compute(Tensor image, Tensor text, Tensor logitScale) =>
        ComputeWithLogits(image, text, logitScale).Loss;

    /// <summary>As <see cref="Compute"/>, also returning the [B, B] logits (row: image, column: text).</summary>
    public static (Tensor Loss, Tensor Logits) ComputeWithLogits(Tensor image, Tensor text, Tensor logitScale)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(logitScale);
        if (image.ndim != 2 || !image.shape.SequenceEqual(text.shape))
        {
            throw new ArgumentException($"image and text must both be [B, E], got [{string.Join(", ", image.shape)}] and [{string.Join(", ", text.shape)}]");
        }

        var logits = logitScale.exp() * image.matmul(text.t()); // [B, B]
        using var rows = image.shape[0].ToScalar();
        var labels = arange(rows, dtype: ScalarType.Int64, device: image.device); // [B]: pair i is the right answer for row i
        var loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)).div(Scalars.Two);
        return (loss, logits);
    }

    /// <summary>Fraction of rows (images) and of columns (texts) whose largest logit is their own pair.</summary>
    public static (double ImageToText, double TextToImage) Accuracy(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        using var scope = NewDisposeScope();
        using var count = logits.shape[0].ToScalar();
        var labels = arange(count, dtype: ScalarType.Int64, device: logits.device);
        var rows = logits.argmax(1).eq(labels).to_type(ScalarType.Float64).mean().item<double>();
        var columns = logits.argmax(0).eq(labels).to_type(ScalarType.Float64).mean().item<double>();
        return (rows, columns);
    }
}

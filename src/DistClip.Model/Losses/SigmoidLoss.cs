using DistClip.Config;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Losses;

/// <summary>
/// SigLIP's loss (Zhai et al., 2023) over one whole batch as one autograd expression: the definition
/// that <see cref="SigmoidPairs"/> computes block by block.
/// </summary>
public static class SigmoidLoss
{
    /// <summary>SigLIP's initial temperature: t' = ln 10, so exp(t') = 10.</summary>
    public static readonly double InitLogitScale = ClipConfig.SigLipInitLogitScale;

    /// <summary>SigLIP's initial bias: −10, so that the many negatives start with a small loss.</summary>
    public const double InitLogitBias = ClipConfig.SigLipInitLogitBias;

    /// <param name="image">[B, E] L2-normalised; row i pairs with row i of <paramref name="text"/>.</param>
    /// <param name="text">[B, E] L2-normalised.</param>
    /// <param name="logitScale">Scalar t; logits are exp(t)·cos + bias.</param>
    /// <param name="logitBias">Scalar bias.</param>
    /// <returns>Scalar: −(1/B) Σ_ij log σ(z_ij·logit_ij), z = 1 on the diagonal and −1 elsewhere.</returns>
    public static Tensor Compute(Tensor image, Tensor text, Tensor logitScale, Tensor logitBias)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(text);
        var logits = (logitScale.exp() * image.matmul(text.t())) + logitBias; // [B, B]
        long b = image.shape[0];
        var z = eye(b, dtype: logits.dtype, device: logits.device).mul(Scalars.Two).sub(Scalars.One); // [B, B]: +1 pairs, −1 otherwise
        using var count = b.ToScalar();
        return (-F.logsigmoid(z * logits).sum()).div(count);
    }
}

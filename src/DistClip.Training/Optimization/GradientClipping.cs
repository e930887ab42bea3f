using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Optimization;

/// <summary>
/// libtorch's <c>clip_grad_norm_</c> without its last pass: the global norm and the factor the
/// gradients would be multiplied by, for an optimizer that applies the factor as it reads them
/// (<see cref="Fused.AdamW.Step(float)"/>), saving a read and a write of every gradient.
/// </summary>
/// <remarks>
/// The same tensor ops as libtorch's C++ <c>torch::nn::utils::clip_grad_norm_</c> (2-norm):
/// per-gradient norms, the norm of their stack, <c>max_norm / (total + 1e-6)</c> clamped to at most 1,
/// all in float32; so the norm and the factor are bit-identical to it, and so is <c>g · factor</c>
/// to the gradient it leaves behind.
/// </remarks>
public static class GradientClipping
{
    /// <param name="maxNorm">The bound; <see cref="double.PositiveInfinity"/> measures without clipping (factor 1).</param>
    /// <returns>The global 2-norm of the gradients (0 without any), and the factor min(1, maxNorm / (norm + 1e-6)).</returns>
    public static (double Norm, float Factor) Measure(IEnumerable<Parameter> parameters, double maxNorm)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var norms = new List<Tensor>();
        foreach (var p in parameters)
        {
            var grad = p.grad;
            if (grad is not null)
            {
                norms.Add(grad.norm(2f));
            }
        }

        if (norms.Count == 0)
        {
            return (0, 1f);
        }

        var total = norms.Count == 1 ? norms[0] : torch.stack(norms).norm(2f);
        // Scalar / tensor in libtorch's C++ is a tensor filled with the scalar, divided in place.
        using var bound = maxNorm.ToScalar();
        using var epsilon = 1e-6.ToScalar();
        using var one = 1.0.ToScalar();
        var factor = torch.empty_like(total).fill_(bound).div_(total.add(epsilon)).clamp_max(one);
        return (total.item<float>(), factor.item<float>());
    }
}

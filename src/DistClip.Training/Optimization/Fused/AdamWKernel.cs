using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DistClip.Training.Optimization.Fused;

/// <summary>
/// One AdamW update of float32 tensors, block by block: for a block of at most
/// <see cref="BlockElements"/> elements, pass one computes m, v and a copy of v into a block-sized
/// buffer, libtorch takes the root of that buffer in place, and pass two updates p. The buffer stays
/// in the core's cache, so the memory traffic is one read of g, m, v, p and one write of m, v, p:
/// what a single pass would cost. TorchSharp's AdamW runs the same arithmetic as nine libtorch ops per
/// tensor, each a pass over it (and two temporaries the size of it); on one thread the optimizer
/// phase is bound by memory traffic, so this is several times cheaper.
/// </summary>
/// <remarks>
/// Every element is computed with the float operations libtorch's vectorised CPU kernels perform,
/// in the same order (scalars computed in double by TorchSharp, rounded to float by libtorch; which
/// ones fuse a multiply and an add was measured against libtorch 2.10 on AVX-512):
/// <code>
/// g ← g · s                          clip_grad_norm_'s grad.mul_(s)  (s = 1 without clipping)
/// m ← fma(g, 1 − β1, m · β1)         exp_avg.mul_(β1).add_(g, alpha: 1 − β1)  (add is an fmadd)
/// v ← fma((1 − β2) · g, g, v · β2)   exp_avg_sq.mul_(β2).addcmul_(g, g, value: 1 − β2)
/// r ← √v                             libtorch's own sqrt_
/// d ← r / √(1 − β2^t) + ε            (… / √bc2).add_(ε)
/// p ← p · (1 − lr·wd) + (−lr / (1 − β1^t)) · m / d      param.mul_(…), param.addcdiv_(m, d, value: −step)
/// </code>
/// libtorch's vectorised sqrt is not the correctly rounded one on a few elements in a thousand, and
/// over a hundred training steps a last-bit difference grows past 1e-6 (measured: 4e-4 on a bias),
/// so the root is libtorch's. An earlier version took it over one flat copy of every v, which cost
/// three more passes over the model's size than the blocks do.
/// </remarks>
internal static class AdamWKernel
{
    /// <summary>
    /// Elements per block: 125 KiB of root, which stays in a core's L2 between the passes, and below
    /// libtorch's grain size (32,768), so its sqrt_ runs inline and never fans out to other threads
    /// from a worker. A multiple of every vector width.
    /// </summary>
    public const int BlockElements = 32_000;

    /// <summary>The scalars of one tensor's update at its step <c>t</c>, rounded as libtorch rounds a Scalar argument.</summary>
    internal readonly record struct Coefficients(
        float GradientScale, float Decay, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2, float BiasCorrection2Sqrt, float Eps, float NegativeStepSize)
    {
        /// <param name="step">The tensor's step count after this update (1 on the first).</param>
        /// <param name="gradientScale">The clipping factor the gradient is multiplied by first.</param>
        public static Coefficients For(double lr, double beta1, double beta2, double eps, double weightDecay, long step, float gradientScale = 1f)
        {
            // As TorchSharp's AdamW.step computes them, in double.
            double biasCorrection1 = 1 - Math.Pow(beta1, step);
            double biasCorrection2 = 1 - Math.Pow(beta2, step);
            double stepSize = lr / biasCorrection1;
            return new Coefficients(gradientScale, (float)(1 - lr * weightDecay), (float)beta1, (float)(1 - beta1), (float)beta2, (float)(1 - beta2),
                (float)Math.Sqrt(biasCorrection2), (float)eps, (float)-stepSize);
        }
    }

    /// <summary>
    /// First pass: the moments <paramref name="m"/> and <paramref name="v"/> in place from the gradient
    /// <paramref name="g"/>, and a copy of the new <paramref name="v"/> into <paramref name="root"/>,
    /// whose square root libtorch then takes in place (its sqrt is not the correctly rounded one,
    /// and only its own gives the same bits).
    /// </summary>
    public static void Moments(ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> root, in Coefficients c)
    {
        int n = g.Length;
        if (m.Length != n || v.Length != n || root.Length != n)
        {
            throw new ArgumentException($"lengths differ: g {n}, m {m.Length}, v {v.Length}, root {root.Length}");
        }

        ref float gr = ref MemoryMarshal.GetReference(g);
        ref float mr = ref MemoryMarshal.GetReference(m);
        ref float vr = ref MemoryMarshal.GetReference(v);
        ref float rr = ref MemoryMarshal.GetReference(root);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var scale = Vector256.Create(c.GradientScale);
            var beta1 = Vector256.Create(c.Beta1);
            var oneMinusBeta1 = Vector256.Create(c.OneMinusBeta1);
            var beta2 = Vector256.Create(c.Beta2);
            var oneMinusBeta2 = Vector256.Create(c.OneMinusBeta2);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                nuint at = (nuint)i;
                var gv = Vector256.LoadUnsafe(ref gr, at) * scale;
                var mv = Vector256.FusedMultiplyAdd(gv, oneMinusBeta1, Vector256.LoadUnsafe(ref mr, at) * beta1);
                var vv = Vector256.FusedMultiplyAdd(oneMinusBeta2 * gv, gv, Vector256.LoadUnsafe(ref vr, at) * beta2);
                mv.StoreUnsafe(ref mr, at);
                vv.StoreUnsafe(ref vr, at);
                vv.StoreUnsafe(ref rr, at);
            }
        }

        for (; i < n; i++)
        {
            float gi = Unsafe.Add(ref gr, i) * c.GradientScale;
            ref float mi = ref Unsafe.Add(ref mr, i);
            ref float vi = ref Unsafe.Add(ref vr, i);
            mi = MathF.FusedMultiplyAdd(gi, c.OneMinusBeta1, mi * c.Beta1);
            vi = MathF.FusedMultiplyAdd(c.OneMinusBeta2 * gi, gi, vi * c.Beta2);
            Unsafe.Add(ref rr, i) = vi;
        }
    }

    /// <summary>Second pass: the parameter <paramref name="p"/> in place from <paramref name="m"/> and √v (<paramref name="root"/>).</summary>
    public static void Apply(Span<float> p, ReadOnlySpan<float> m, ReadOnlySpan<float> root, in Coefficients c)
    {
        int n = p.Length;
        if (m.Length != n || root.Length != n)
        {
            throw new ArgumentException($"lengths differ: p {n}, m {m.Length}, root {root.Length}");
        }

        ref float pr = ref MemoryMarshal.GetReference(p);
        ref float mr = ref MemoryMarshal.GetReference(m);
        ref float rr = ref MemoryMarshal.GetReference(root);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var decay = Vector256.Create(c.Decay);
            var correction = Vector256.Create(c.BiasCorrection2Sqrt);
            var eps = Vector256.Create(c.Eps);
            var stepSize = Vector256.Create(c.NegativeStepSize);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                nuint at = (nuint)i;
                var d = Vector256.LoadUnsafe(ref rr, at) / correction + eps;
                var pv = Vector256.LoadUnsafe(ref pr, at) * decay + stepSize * Vector256.LoadUnsafe(ref mr, at) / d;
                pv.StoreUnsafe(ref pr, at);
            }
        }

        for (; i < n; i++)
        {
            float d = Unsafe.Add(ref rr, i) / c.BiasCorrection2Sqrt + c.Eps;
            ref float pi = ref Unsafe.Add(ref pr, i);
            pi = pi * c.Decay + c.NegativeStepSize * Unsafe.Add(ref mr, i) / d;
        }
    }
}

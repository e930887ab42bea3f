using TorchSharp;

namespace DistClip.Model;

/// <summary>
/// TorchSharp Scalars that outlive the native calls they are passed to (analyzer DC0001,
/// docs/torchsharp.md, "Scalar lifetimes"). TorchSharp 0.107 keeps no Scalar alive during its
/// libtorch call, and an undisposed Scalar is freed by its finalizer, which may run mid-call. These
/// constants live for the process; a value known only at run time goes in a <c>using</c> local
/// (<c>using var s = x.ToScalar();</c>), disposed after the call.
/// </summary>
public static class Scalars
{
    /// <summary>−∞ (double): a masked logit.</summary>
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();

    /// <summary>1 (an integer Scalar, as the literal <c>1</c> converts: it keeps an integer tensor integral).</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary>2 (an integer Scalar).</summary>
    public static readonly Scalar Two = 2.ToScalar();
}

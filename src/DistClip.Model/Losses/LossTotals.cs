using static TorchSharp.torch;

namespace DistClip.Model.Losses;

/// <summary>
/// Running sums of one rank's loss stage, kept on the device as float64 scalars so that thousands of
/// tiles add up without float32 round-off and without a host round trip per tile.
/// </summary>
public sealed class LossTotals : IDisposable
{
    public LossTotals(Device device)
    {
        LossSum = zeros(1, dtype: ScalarType.Float64, device: device);
        ScaleGradient = zeros(1, dtype: ScalarType.Float64, device: device);
        BiasGradient = zeros(1, dtype: ScalarType.Float64, device: device);
    }

    /// <summary>Σ of the per-row (softmax) or per-pair (sigmoid) losses seen, before the 1/B factor.</summary>
    public Tensor LossSum { get; }

    /// <summary>This rank's part of dL/dt, where logits = exp(t)·q·k (+ bias): Σ g·(logit − bias).</summary>
    public Tensor ScaleGradient { get; }

    /// <summary>This rank's part of dL/d(bias): Σ g (sigmoid loss only).</summary>
    public Tensor BiasGradient { get; }

    public void Dispose()
    {
        LossSum.Dispose();
        ScaleGradient.Dispose();
        BiasGradient.Dispose();
    }
}

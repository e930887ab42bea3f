using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Steps;

/// <summary>
/// The two points where a training step talks to the other ranks (DESIGN.md, "One training step").
/// The step calls them on its own thread and inside its dispose scope, so implementations block
/// until the collective completes (or fails, or <paramref name="ct"/> fires) rather than returning
/// a task whose continuation could run on another thread outside that scope.
/// </summary>
public interface IStepCollectives
{
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>
    /// All-gathers this rank's L2-normalised features ([b_r, D] each) into the global batch
    /// ([B, D], rank order). This rank's rows must stay the gradient-carrying local tensors; the
    /// other ranks' rows are constants.
    /// </summary>
    (Tensor Images, Tensor Texts) GatherFeatures(Tensor localImages, Tensor localTexts, CancellationToken ct);

    /// <summary>
    /// Sums the gradients of <paramref name="parameters"/> (the towers' parameters) over ranks, in
    /// place. The caller leaves the temperature out: every rank computes the full global loss, so its
    /// gradient is already whole on each rank and summing would count it N times.
    /// </summary>
    void ReduceGradients(IReadOnlyList<Parameter> parameters, CancellationToken ct);
}

/// <summary>One process training on the whole global batch: both collectives are the identity.</summary>
public sealed class SingleProcessCollectives : IStepCollectives
{
    public static SingleProcessCollectives Instance { get; } = new();

    public int Rank => 0;

    public int WorldSize => 1;

    public (Tensor Images, Tensor Texts) GatherFeatures(Tensor localImages, Tensor localTexts, CancellationToken ct) => (localImages, localTexts);

    public void ReduceGradients(IReadOnlyList<Parameter> parameters, CancellationToken ct)
    {
    }
}

using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Steps;

/// <summary>
/// Where a training step talks to the other ranks (docs/architecture.md, "One training step"):
/// the loss stage moves features and their gradients between ranks, the step sums the parameters'
/// gradients. The step calls these on its own thread and inside its dispose scope, so implementations
/// block until the collective completes (or fails, or <paramref name="ct"/> fires) rather than
/// returning a task whose continuation could run on another thread outside that scope.
/// </summary>
/// <remarks>
/// Row tensors are float32 [rows, W] on the step's device; what comes back carries no autograd
/// history. Every rank calls the same operations in the same order.
/// </remarks>
public interface IStepCollectives
{
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>
    /// Every rank's local row count b_j, in rank order, given this rank's [rows, width] features;
    /// refuses on every rank alike when the widths differ.
    /// </summary>
    int[] GatherRowCounts(long rows, long width, CancellationToken ct);

    /// <summary>[b_r, W] → [B, W]: every rank's rows in rank order, the same bits on every rank.</summary>
    Tensor AllGatherRows(Tensor local, IReadOnlyList<int> rows, CancellationToken ct);

    /// <summary>[B, W] on every rank → this rank's [b_r, W] block of the element-wise sum over ranks.</summary>
    Tensor ReduceScatterRows(Tensor full, IReadOnlyList<int> rows, CancellationToken ct);

    /// <summary>Sends [b_r, W] to rank + 1 and returns rank − 1's [<paramref name="receiveRows"/>, W].</summary>
    Tensor ShiftRows(Tensor send, int receiveRows, CancellationToken ct);

    /// <summary>In place: each value becomes its sum over ranks (a few statistics).</summary>
    void AllReduceSum(float[] values, CancellationToken ct);

    /// <summary>
    /// Sums the gradients of <paramref name="parameters"/> over ranks, in place; afterwards every rank
    /// holds bit-identical gradients. Each rank's gradients are its part of the global loss's gradient
    /// (the temperature's included), so their sum is the whole.
    /// </summary>
    void ReduceGradients(IReadOnlyList<Parameter> parameters, CancellationToken ct);
}

/// <summary>One process training on the whole global batch: every collective is the identity.</summary>
public sealed class SingleProcessCollectives : IStepCollectives
{
    public static SingleProcessCollectives Instance { get; } = new();

    public int Rank => 0;

    public int WorldSize => 1;

    public int[] GatherRowCounts(long rows, long width, CancellationToken ct) => [checked((int)rows)];

    public Tensor AllGatherRows(Tensor local, IReadOnlyList<int> rows, CancellationToken ct) => local.detach();

    public Tensor ReduceScatterRows(Tensor full, IReadOnlyList<int> rows, CancellationToken ct) => full.detach();

    public Tensor ShiftRows(Tensor send, int receiveRows, CancellationToken ct) => send.detach();

    public void AllReduceSum(float[] values, CancellationToken ct)
    {
    }

    public void ReduceGradients(IReadOnlyList<Parameter> parameters, CancellationToken ct)
    {
    }
}

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
    /// The step's first collective: every rank's local row count b_j, in rank order, given this rank's
    /// [rows, width] features; refuses on every rank alike when the widths differ. The same message
    /// carries each rank's <paramref name="previous"/> (its collective waits in the step before, or
    /// null), returned in rank order.
    /// </summary>
    StepHeaders GatherRowCounts(long rows, long width, CollectiveWaits? previous, CancellationToken ct);

    /// <summary>[b_r, W] → [B, W]: every rank's rows in rank order, the same bits on every rank.</summary>
    Tensor AllGatherRows(Tensor local, IReadOnlyList<int> rows, CancellationToken ct);

    /// <summary>[B, W] on every rank → this rank's [b_r, W] block of the element-wise sum over ranks.</summary>
    Tensor ReduceScatterRows(Tensor full, IReadOnlyList<int> rows, CancellationToken ct);

    /// <summary>Sends [b_r, W] to rank + 1 and returns rank − 1's [<paramref name="receiveRows"/>, W].</summary>
    Tensor ShiftRows(Tensor send, int receiveRows, CancellationToken ct);

    /// <summary>In place: each value becomes its sum over ranks (a few statistics).</summary>
    void AllReduceSum(float[] values, CancellationToken ct);

    /// <summary>
    /// Starts summing the gradients of <paramref name="stages"/>' parameters over ranks, in place; the
    /// caller releases each stage once its gradients are final (<see cref="IGradientReduction.Release"/>),
    /// and the implementation may put it on the wire while the caller computes the next stage's. After
    /// <see cref="IGradientReduction.Complete"/> every rank holds bit-identical gradients. Each rank's
    /// gradients are its part of the global loss's gradient (the temperature's included), so their sum
    /// is the whole. Every rank passes the same stages (the same parameters, order and shapes).
    /// </summary>
    /// <param name="rowSparse">
    /// Lookup tables whose gradient on this rank is zero outside the rows its batch used (the token
    /// embedding): the implementation may sum just the rows some rank used, which is the same sum.
    /// Every rank names the same tables; the rows are each rank's own. Null: none.
    /// </param>
    IGradientReduction BeginGradientReduction(
        IReadOnlyList<IReadOnlyList<Parameter>> stages, IReadOnlyList<RowSparseGradient>? rowSparse, CancellationToken ct);
}

/// <summary>What the step's first collective returns (<see cref="IStepCollectives.GatherRowCounts"/>).</summary>
/// <param name="Rows">Every rank's local row count, in rank order.</param>
/// <param name="PreviousWaits">Every rank's collective waits in its previous step, in rank order (null: that rank had none, or sent a value out of range).</param>
public sealed record StepHeaders(int[] Rows, CollectiveWaits?[] PreviousWaits);

/// <summary>A [rows, width] lookup table whose gradient is zero outside <paramref name="Rows"/> (this rank's, any order, repeats allowed).</summary>
public sealed record RowSparseGradient(Parameter Parameter, long[] Rows);

/// <summary>A gradient reduction in progress (<see cref="IStepCollectives.BeginGradientReduction"/>).</summary>
/// <remarks>Disposing one that has not completed abandons it: the wire stops, and the collectives fail as after any cancelled operation.</remarks>
public interface IGradientReduction : IDisposable
{
    /// <summary>Stage <paramref name="stage"/>'s gradients are final; stages are released in order, each once.</summary>
    void Release(int stage);

    /// <summary>Blocks until every stage is summed; afterwards the gradients are the sums.</summary>
    void Complete();
}

/// <summary>
/// A reduction that does all its work at <see cref="Complete"/>, summing every stage's parameters at
/// once with <paramref name="reduce"/> (test doubles and implementations without a background wire).
/// </summary>
public sealed class DeferredGradientReduction(IReadOnlyList<IReadOnlyList<Parameter>> stages, Action<IReadOnlyList<Parameter>> reduce) : IGradientReduction
{
    private int _released;

    public void Release(int stage)
    {
        if (stage != _released || stage >= stages.Count)
        {
            throw new InvalidOperationException($"Stages are released once each, in order: expected stage {_released} of {stages.Count}, got {stage}.");
        }

        _released++;
    }

    public void Complete()
    {
        if (_released != stages.Count)
        {
            throw new InvalidOperationException($"Stage {_released} of {stages.Count} was never released.");
        }

        reduce([.. stages.SelectMany(s => s)]);
    }

    public void Dispose()
    {
    }
}

/// <summary>One process training on the whole global batch: every collective is the identity.</summary>
public sealed class SingleProcessCollectives : IStepCollectives
{
    public static SingleProcessCollectives Instance { get; } = new();

    public int Rank => 0;

    public int WorldSize => 1;

    public StepHeaders GatherRowCounts(long rows, long width, CollectiveWaits? previous, CancellationToken ct) => new([checked((int)rows)], [previous]);

    public Tensor AllGatherRows(Tensor local, IReadOnlyList<int> rows, CancellationToken ct) => local.detach();

    public Tensor ReduceScatterRows(Tensor full, IReadOnlyList<int> rows, CancellationToken ct) => full.detach();

    public Tensor ShiftRows(Tensor send, int receiveRows, CancellationToken ct) => send.detach();

    public void AllReduceSum(float[] values, CancellationToken ct)
    {
    }

    public IGradientReduction BeginGradientReduction(
        IReadOnlyList<IReadOnlyList<Parameter>> stages, IReadOnlyList<RowSparseGradient>? rowSparse, CancellationToken ct) =>
        new DeferredGradientReduction(stages, _ => { });
}

using DistClip.Collectives;

namespace DistClip.Training.Tests.Distributed;

/// <summary>
/// Passes every call to a real group, with hooks around the first all-reduce (of at least
/// <see cref="AllReduceMinimumLength"/> elements: the loss stage sums three statistics before the
/// gradients), the first all-gather, reduce-scatter and shift: a phase barrier for failure tests,
/// never a sleep.
/// </summary>
internal sealed class InterceptingGroup(ICollectiveGroup inner) : ICollectiveGroup
{
    private int _allReduces;
    private int _allGathers;
    private int _reduceScatters;
    private int _shifts;

    /// <summary>All-reduces shorter than this pass untouched (1: every one counts).</summary>
    public int AllReduceMinimumLength { get; init; } = 1;

    /// <summary>Runs before the first reduce-scatter is handed to the real group.</summary>
    public Action? BeforeFirstReduceScatter { get; init; }

    /// <summary>Runs before the first shift is handed to the real group.</summary>
    public Action? BeforeFirstShift { get; init; }

    /// <summary>Runs before the first all-reduce is handed to the real group.</summary>
    public Action? BeforeFirstAllReduce { get; init; }

    /// <summary>Runs once the first all-reduce is under way, with its task.</summary>
    public Action<Task>? AfterFirstAllReduceStarted { get; init; }

    /// <summary>Runs before the first all-gather is handed to the real group.</summary>
    public Action? BeforeFirstAllGather { get; init; }

    public int Rank => inner.Rank;

    public int WorldSize => inner.WorldSize;

    public long Generation => inner.Generation;

    public Task AllReduceSumAsync(Memory<float> data, CancellationToken cancellationToken)
    {
        bool first = data.Length >= AllReduceMinimumLength && Interlocked.Increment(ref _allReduces) == 1;
        if (first)
        {
            BeforeFirstAllReduce?.Invoke();
        }

        var task = inner.AllReduceSumAsync(data, cancellationToken);
        if (first)
        {
            AfterFirstAllReduceStarted?.Invoke(task);
        }

        return task;
    }

    public Task AllReduceSumAsync(IReadOnlyList<Memory<float>> buffers, CancellationToken cancellationToken) =>
        inner.AllReduceSumAsync(buffers, cancellationToken);

    public Task AllGatherAsync(ReadOnlyMemory<float> local, Memory<float> output, CancellationToken cancellationToken)
    {
        BeforeAllGather();
        return inner.AllGatherAsync(local, output, cancellationToken);
    }

    public Task AllGatherAsync(ReadOnlyMemory<float> local, Memory<float> output, IReadOnlyList<int> counts, CancellationToken cancellationToken)
    {
        BeforeAllGather();
        return inner.AllGatherAsync(local, output, counts, cancellationToken);
    }

    public Task ReduceScatterSumAsync(Memory<float> data, IReadOnlyList<int> counts, CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _reduceScatters) == 1)
        {
            BeforeFirstReduceScatter?.Invoke();
        }

        return inner.ReduceScatterSumAsync(data, counts, cancellationToken);
    }

    public Task ShiftAsync(ReadOnlyMemory<float> send, Memory<float> receive, CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _shifts) == 1)
        {
            BeforeFirstShift?.Invoke();
        }

        return inner.ShiftAsync(send, receive, cancellationToken);
    }

    public Task BroadcastAsync(Memory<float> data, int root, CancellationToken cancellationToken) => inner.BroadcastAsync(data, root, cancellationToken);

    public Task BroadcastAsync(Memory<byte> data, int root, CancellationToken cancellationToken) => inner.BroadcastAsync(data, root, cancellationToken);

    public Task BarrierAsync(CancellationToken cancellationToken) => inner.BarrierAsync(cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private void BeforeAllGather()
    {
        if (Interlocked.Increment(ref _allGathers) == 1)
        {
            BeforeFirstAllGather?.Invoke();
        }
    }
}

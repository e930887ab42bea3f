namespace DistClip.Collectives;

/// <summary>
/// One rank's handle on a group of <see cref="WorldSize"/> ranks that run collectives together.
/// </summary>
/// <remarks>
/// Every rank must issue the same operations, with the same sizes, in the same order; calls on one
/// group are served one at a time. Any failure (a peer lost, a timeout, a cancelled token, a
/// mismatched frame) faults the group: the links to both neighbours are torn down so their pending
/// operations fail too, and every later call throws. Recover by building a new group for the next
/// generation. All results are bit-identical on every rank.
/// </remarks>
public interface ICollectiveGroup : IAsyncDisposable
{
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>The run's generation; frames of any other generation are rejected, never applied.</summary>
    long Generation { get; }

    /// <summary>In place: <paramref name="data"/> becomes the element-wise sum over all ranks.</summary>
    Task AllReduceSumAsync(Memory<float> data, CancellationToken cancellationToken);

    /// <summary>Sums several buffers as one operation (as if concatenated); each is updated in place.</summary>
    Task AllReduceSumAsync(IReadOnlyList<Memory<float>> buffers, CancellationToken cancellationToken);

    /// <summary>
    /// <paramref name="output"/> becomes the concatenation of every rank's <paramref name="local"/>, in
    /// rank order; every rank contributes the same number of elements.
    /// </summary>
    Task AllGatherAsync(ReadOnlyMemory<float> local, Memory<float> output, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="AllGatherAsync(ReadOnlyMemory{float}, Memory{float}, CancellationToken)"/>, where
    /// rank r contributes <c>counts[r]</c> elements (the same list on every rank).
    /// </summary>
    Task AllGatherAsync(
        ReadOnlyMemory<float> local, Memory<float> output, IReadOnlyList<int> counts, CancellationToken cancellationToken);

    /// <summary>
    /// Reduce-scatter (sum): every rank passes the same-length data (the sum of counts); afterwards rank r's
    /// block [offset_r, offset_r + counts[r]) (offset_r = sum of counts[0..r)) holds the element-wise sum of
    /// that block over all ranks. The rest of data is scratch (undefined) on return.
    /// </summary>
    /// <remarks>Block b's sum is formed in one fixed order, so it has the same bits on every run.</remarks>
    Task ReduceScatterSumAsync(Memory<float> data, IReadOnlyList<int> counts, CancellationToken cancellationToken);

    /// <summary>
    /// Ring shift: sends <paramref name="send"/> to the right neighbour (rank + 1 mod N) while receiving the
    /// left neighbour's (rank - 1 mod N) <paramref name="send"/> into <paramref name="receive"/>;
    /// receive.Length must equal what the left neighbour sends (the caller knows every rank's size).
    /// With N = 1, receive becomes a copy of send.
    /// </summary>
    /// <remarks>
    /// A length that differs from the left neighbour's fails the operation with a
    /// <see cref="CollectiveMismatchException"/> naming both sizes; nothing is written to receive.
    /// </remarks>
    Task ShiftAsync(ReadOnlyMemory<float> send, Memory<float> receive, CancellationToken cancellationToken);

    /// <summary>Every rank's <paramref name="data"/> becomes <paramref name="root"/>'s.</summary>
    Task BroadcastAsync(Memory<float> data, int root, CancellationToken cancellationToken);

    /// <summary>Raw bytes: every rank's <paramref name="data"/> becomes <paramref name="root"/>'s.</summary>
    Task BroadcastAsync(Memory<byte> data, int root, CancellationToken cancellationToken);

    /// <summary>Completes on a rank only once every rank has entered it.</summary>
    Task BarrierAsync(CancellationToken cancellationToken);
}

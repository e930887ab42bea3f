using System.Runtime.InteropServices;
using DistClip.Collectives;
using DistClip.Training.Steps;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Distributed;

/// <summary>
/// Adapts an <see cref="ICollectiveGroup"/> to the training step's <see cref="IStepCollectives"/> (docs/training-step.md): gRPC
/// between worker processes, or in memory in tests. Blocks the training thread on each operation:
/// TorchSharp dispose scopes are per thread, so no tensor work may continue on a thread-pool
/// continuation. Row tensors are staged through host float32 buffers that are reused across steps.
/// </summary>
/// <remarks>
/// The group is not owned: whoever built it disposes it. A failed or cancelled operation faults the
/// group and breaks its links, so the other ranks' pending operations fail too and every rank's step
/// throws; a rank that fails <em>outside</em> a collective should dispose its group so that its peers
/// do not wait for the operation timeout.
/// </remarks>
public sealed class GroupStepCollectives : IStepCollectives, IDisposable
{
    private readonly ICollectiveGroup _group;
    private readonly GradientReducer _reducer;
    private float[] _send = [];
    private float[] _receive = [];

    /// <param name="group">This rank's group; every rank of it must train the same model.</param>
    public GroupStepCollectives(ICollectiveGroup group, GroupStepOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(group);
        options ??= new GroupStepOptions();
        options.Validate();
        _group = group;
        _reducer = new GradientReducer(group, options.BucketBytes);
    }

    public ICollectiveGroup Group => _group;

    public int Rank => _group.Rank;

    public int WorldSize => _group.WorldSize;

    /// <summary>The gradient reducer (tests look at how its last row-sparse bucket went).</summary>
    internal GradientReducer Reducer => _reducer;

    /// <summary>How many of <paramref name="parameters"/>' gradients live in the reduction buffer (CPU, after a reduction).</summary>
    internal int GradientsInBuffer(IEnumerable<Parameter> parameters) => _reducer.GradientsInBuffer(parameters);

    public StepHeaders GatherRowCounts(long rows, long width, CollectiveWaits? previous, CancellationToken ct)
    {
        // Sent as floats: exact up to 2^24.
        if (rows > ExactFloat || width > ExactFloat)
        {
            throw new ArgumentOutOfRangeException(nameof(rows), $"local features [{rows}, {width}] exceed {ExactFloat} rows or columns.");
        }

        int n = WorldSize;
        var headers = new float[HeaderFloats * n];
        Wait(_group.AllGatherAsync(Header(rows, width, previous), headers, ct));
        var all = new int[n];
        var waits = new CollectiveWaits?[n];
        for (int j = 0; j < n; j++)
        {
            var h = headers.AsSpan(HeaderFloats * j, HeaderFloats);
            if (!IsCount(h[0]))
            {
                throw new InvalidDataException($"Rank {j} announced {h[0]} local rows; a row count is a whole number in [0, {ExactFloat}].");
            }

            if (h[1] != width)
            {
                throw new InvalidOperationException(
                    $"Feature widths differ across ranks: rank {Rank} has D = {width}, rank {j} has D = {h[1]}. Every rank must run the same model.");
            }

            all[j] = (int)h[0];
            waits[j] = Waits(h[2], h[3], h[4]);
        }

        return new StepHeaders(all, waits);
    }

    /// <summary>A step header's floats: rows, width, and the previous step's number (mod 2^24) and two waits, NaN for none.</summary>
    internal const int HeaderFloats = 5;

    /// <summary>Integers travel as float32, exact up to 2^24.</summary>
    private const int ExactFloat = 1 << 24;

    /// <summary>Longer than any collective may wait: a wait reported above it is not believed.</summary>
    private const double MaxWaitSeconds = 1e6;

    internal static float[] Header(long rows, long width, CollectiveWaits? previous) => previous is { } w
        ? [rows, width, w.Step % ExactFloat, (float)w.AllGather, (float)w.AllReduce]
        : [rows, width, float.NaN, float.NaN, float.NaN];

    private static bool IsCount(float value) => value >= 0 && value <= ExactFloat && value == MathF.Floor(value);

    /// <summary>A peer's reported waits, or null when it had none or sent values out of range (they only feed metrics).</summary>
    private static CollectiveWaits? Waits(float step, float gather, float reduce) =>
        IsCount(step) && step < ExactFloat && gather is >= 0 and < (float)MaxWaitSeconds && reduce is >= 0 and < (float)MaxWaitSeconds
            ? new CollectiveWaits((long)step, gather, reduce)
            : null;

    /// <summary>
    /// [b_r, W] → [B, W] in rank order. Rank r's rows come back as the very values it sent, so every
    /// rank's result is bit-identical.
    /// </summary>
    public Tensor AllGatherRows(Tensor local, IReadOnlyList<int> rows, CancellationToken ct)
    {
        long width = Width(local, rows[Rank]);
        var counts = rows.Select(r => checked((int)(r * width))).ToArray();
        int total = counts.Sum();
        Grow(ref _send, counts[Rank]);
        Grow(ref _receive, total);
        CopyOut(local, _send.AsSpan(0, counts[Rank]));
        Wait(_group.AllGatherAsync(_send.AsMemory(0, counts[Rank]), _receive.AsMemory(0, total), counts, ct));
        return CopyIn(_receive.AsSpan(0, total), rows.Sum(), width, local);
    }

    /// <summary>[B, W] → this rank's [b_r, W] of the sum over ranks (each block summed in one fixed ring order).</summary>
    public Tensor ReduceScatterRows(Tensor full, IReadOnlyList<int> rows, CancellationToken ct)
    {
        long width = Width(full, rows.Sum());
        var counts = rows.Select(r => checked((int)(r * width))).ToArray();
        int total = counts.Sum();
        Grow(ref _send, total);
        CopyOut(full, _send.AsSpan(0, total));
        Wait(_group.ReduceScatterSumAsync(_send.AsMemory(0, total), counts, ct));
        return CopyIn(_send.AsSpan(counts.Take(Rank).Sum(), counts[Rank]), rows[Rank], width, full);
    }

    public Tensor ShiftRows(Tensor send, int receiveRows, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(send);
        ArgumentOutOfRangeException.ThrowIfNegative(receiveRows);
        long width = send.ndim == 2 ? send.shape[1] : throw new ArgumentException($"send must be [b, W], got [{string.Join(", ", send.shape)}]", nameof(send));
        int sent = checked((int)send.numel());
        int received = checked((int)(receiveRows * width));
        Grow(ref _send, sent);
        Grow(ref _receive, received);
        CopyOut(send, _send.AsSpan(0, sent));
        Wait(_group.ShiftAsync(_send.AsMemory(0, sent), _receive.AsMemory(0, received), ct));
        return CopyIn(_receive.AsSpan(0, received), receiveRows, width, send);
    }

    public void AllReduceSum(float[] values, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(values);
        Wait(_group.AllReduceSumAsync(values, ct));
    }

    /// <summary>
    /// Sums the gradients of <paramref name="parameters"/> over ranks, in place, bucket by bucket. A
    /// gradient that is null on every rank stays null, as in one process; null on some ranks counts as
    /// zeros there, and every rank ends up with the same non-null sum.
    /// </summary>
    public void ReduceGradients(IReadOnlyList<Parameter> parameters, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _reducer.Reduce(parameters, ct);
    }

    /// <summary>
    /// Starts a staged reduction: each released stage goes on the wire in the background, bucket by
    /// bucket, while the caller computes the next stage's gradients (docs/training-step.md).
    /// </summary>
    /// <remarks>
    /// A row-sparse table goes as rows: the ranks first gather which rows each used (two small
    /// all-gathers), then sum just the union's rows, unless the union covers half the table or more.
    /// Rows outside the union are zero on every rank, so their sum is the zero already there.
    /// </remarks>
    public IGradientReduction BeginGradientReduction(
        IReadOnlyList<IReadOnlyList<Parameter>> stages, IReadOnlyList<RowSparseGradient>? rowSparse, CancellationToken ct) =>
        _reducer.Begin(stages, rowSparse, ct);

    /// <summary>
    /// Every rank's parameters and buffers (BatchNorm running statistics included) become
    /// <paramref name="root"/>'s, bit for bit. Refuses, on every rank alike, models whose tensor
    /// names, types or shapes differ.
    /// </summary>
    public void BroadcastParameters(nn.Module model, int root, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        ModelBroadcast.Run(_group, model, root, ct);
    }

    /// <summary>
    /// Every rank receives <paramref name="root"/>'s replica state of <paramref name="step"/> (the
    /// root passes its own; the others null) over the data plane, checked (<see cref="ReplicaBroadcast"/>).
    /// </summary>
    public ReplicaState HandOverState(ReplicaState? mine, int root, long step, nn.Module model, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        return ReplicaBroadcast.Run(_group, mine, root, step, model, ct);
    }

    public void Dispose() => _reducer.Dispose();

    internal static void Wait(Task task) => task.GetAwaiter().GetResult();

    private static long Width(Tensor t, long expectedRows)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (t.ndim != 2 || t.shape[0] != expectedRows)
        {
            throw new ArgumentException($"expected [{expectedRows}, W] rows, got [{string.Join(", ", t.shape)}]");
        }

        return t.shape[1];
    }

    /// <summary>Copies [b, W] rows, as float32, into <paramref name="destination"/> (row-major).</summary>
    private static void CopyOut(Tensor rows, Span<float> destination)
    {
        if (destination.IsEmpty)
        {
            return;
        }

        using var scope = torch.NewDisposeScope();
        var host = rows.detach().to(ScalarType.Float32).cpu().contiguous();
        MemoryMarshal.Cast<byte, float>(host.bytes).CopyTo(destination);
    }

    /// <summary>[rows, W] float32 values → a tensor of <paramref name="like"/>'s type, on its device.</summary>
    private static Tensor CopyIn(ReadOnlySpan<float> values, long rows, long width, Tensor like)
    {
        var host = torch.empty([rows, width], dtype: ScalarType.Float32);
        values.CopyTo(MemoryMarshal.Cast<byte, float>(host.bytes));
        return like.dtype == ScalarType.Float32 && like.device_type == DeviceType.CPU ? host : host.to(like.dtype, like.device);
    }

    private static void Grow(ref float[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new float[length];
        }
    }
}

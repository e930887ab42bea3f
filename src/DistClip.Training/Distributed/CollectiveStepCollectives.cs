using System.Runtime.InteropServices;
using DistClip.Collectives;
using DistClip.Training.Steps;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Distributed;

/// <summary>
/// The step's collectives over a real <see cref="ICollectiveGroup"/> (DESIGN.md, "One training step,
/// exactly", steps 3 and 6): gRPC between worker processes, or in memory in tests. Blocks the
/// training thread on each operation: TorchSharp dispose scopes are per thread, so no tensor work
/// may continue on a thread-pool continuation.
/// </summary>
/// <remarks>
/// <para>
/// The temperature t is counted once by leaving it out of <see cref="ReduceGradients"/>, as
/// <see cref="ClipTrainer"/> does. That is exact: every rank computes the full global loss from
/// bit-identical global features (see <see cref="GatherFeatures"/>), so each already holds the whole
/// dL/dt, bit for bit the same given the same libtorch build and kind of device. Summing would give
/// N·dL/dt; summing and dividing by N is not exact in float32 (for N = 4 the ring forms
/// ((x + x) + x) + x, and round(3x) + x need not be 4x).
/// </para>
/// <para>
/// The group is not owned: whoever built it disposes it. A failed or cancelled operation faults
/// the group and breaks its links, so the other ranks' pending operations fail too and every rank's
/// step throws; a rank that fails <em>outside</em> a collective should dispose its group so that its
/// peers do not wait for the operation timeout.
/// </para>
/// </remarks>
public sealed class CollectiveStepCollectives : IStepCollectives, IDisposable
{
    private readonly ICollectiveGroup _group;
    private readonly GradientReducer _reducer;
    private float[] _send = [];
    private float[] _gathered = [];

    /// <param name="group">This rank's group; every rank of it must train the same model.</param>
    public CollectiveStepCollectives(ICollectiveGroup group, CollectiveStepOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(group);
        options ??= new CollectiveStepOptions();
        options.Validate();
        _group = group;
        _reducer = new GradientReducer(group, options.BucketBytes);
    }

    public ICollectiveGroup Group => _group;

    public int Rank => _group.Rank;

    public int WorldSize => _group.WorldSize;

    /// <summary>How many of <paramref name="parameters"/>' gradients live in the reduction buffer (CPU, after a reduction).</summary>
    internal int GradientsInBuffer(IEnumerable<Parameter> parameters) => _reducer.GradientsInBuffer(parameters);

    /// <summary>
    /// [b_r, D] each → [B, D] each, rank order. Rank r's rows are <paramref name="localImages"/> and
    /// <paramref name="localTexts"/> themselves (autograd flows back through them); the other rows are
    /// constants. Every rank's result is bit-identical: the local rows are the very values sent.
    /// Local batch sizes may differ (a skipped sample); they are all-gathered first.
    /// </summary>
    public (Tensor Images, Tensor Texts) GatherFeatures(Tensor localImages, Tensor localTexts, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(localImages);
        ArgumentNullException.ThrowIfNull(localTexts);
        if (localImages.ndim != 2 || !localImages.shape.SequenceEqual(localTexts.shape))
        {
            throw new ArgumentException(
                $"local features must both be [b, D], got [{string.Join(", ", localImages.shape)}] and [{string.Join(", ", localTexts.shape)}]");
        }

        using var scope = torch.NewDisposeScope();
        int n = WorldSize;
        var (rows, width) = GatherShapes(localImages.shape[0], localImages.shape[1], ct);

        // One gather for both towers: rank j contributes [images b_j·D | texts b_j·D].
        var counts = new int[n];
        var offsets = new int[n + 1];
        for (int j = 0; j < n; j++)
        {
            counts[j] = checked(2 * rows[j] * width);
            offsets[j + 1] = checked(offsets[j] + counts[j]);
        }

        int local = counts[Rank];
        Grow(ref _send, local);
        Grow(ref _gathered, offsets[n]);
        CopyOut(localImages, _send.AsSpan(0, local / 2));
        CopyOut(localTexts, _send.AsSpan(local / 2, local / 2));
        Wait(_group.AllGatherAsync(_send.AsMemory(0, local), _gathered.AsMemory(0, offsets[n]), counts, ct));

        var all = torch.empty(offsets[n], dtype: ScalarType.Float32); // [2·B·D]
        _gathered.AsSpan(0, offsets[n]).CopyTo(MemoryMarshal.Cast<byte, float>(all.bytes));
        all = all.to(localImages.dtype).to(localImages.device);
        var images = new Tensor[n];
        var texts = new Tensor[n];
        for (int j = 0; j < n; j++)
        {
            long half = (long)rows[j] * width;
            images[j] = j == Rank ? localImages : all.narrow(0, offsets[j], half).view(rows[j], width); // [b_j, D]
            texts[j] = j == Rank ? localTexts : all.narrow(0, offsets[j] + half, half).view(rows[j], width);
        }

        var globalImages = torch.cat(images, 0).MoveToOuterDisposeScope(); // [B, D]
        var globalTexts = torch.cat(texts, 0).MoveToOuterDisposeScope();
        return (globalImages, globalTexts);
    }

    /// <summary>
    /// Sums the gradients of <paramref name="parameters"/> (the towers': leave the temperature out,
    /// see remarks) over ranks, in place, bucket by bucket. A gradient that is null on every rank
    /// stays null, as in one process; null on some ranks counts as zeros there, and every rank ends up
    /// with the same non-null sum. Afterwards every rank holds bit-identical gradients.
    /// </summary>
    public void ReduceGradients(IReadOnlyList<Parameter> parameters, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _reducer.Reduce(parameters, ct);
    }

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

    public void Dispose() => _reducer.Dispose();

    internal static void Wait(Task task) => task.GetAwaiter().GetResult();

    /// <summary>Every rank's (b_r, D); refuses on every rank alike when the widths differ.</summary>
    private (int[] Rows, int Width) GatherShapes(long rows, long width, CancellationToken ct)
    {
        // Sent as floats: exact up to 2^24.
        const long exact = 1 << 24;
        if (rows > exact || width > exact)
        {
            throw new ArgumentOutOfRangeException(nameof(rows), $"local features [{rows}, {width}] exceed {exact} rows or columns.");
        }

        int n = WorldSize;
        var shapes = new float[2 * n];
        Wait(_group.AllGatherAsync(new float[] { rows, width }, shapes, ct));
        var all = new int[n];
        for (int j = 0; j < n; j++)
        {
            all[j] = (int)shapes[2 * j];
            if (shapes[(2 * j) + 1] != width)
            {
                throw new InvalidOperationException(
                    $"Feature widths differ across ranks: rank {Rank} has D = {width}, rank {j} has D = {shapes[(2 * j) + 1]}. Every rank must run the same model.");
            }
        }

        return (all, (int)width);
    }

    /// <summary>Copies [b, D] features, as float32, into <paramref name="destination"/> (row-major).</summary>
    private static void CopyOut(Tensor features, Span<float> destination)
    {
        if (destination.IsEmpty)
        {
            return;
        }

        var host = features.detach().to(ScalarType.Float32).cpu().contiguous();
        MemoryMarshal.Cast<byte, float>(host.bytes).CopyTo(destination);
    }

    private static void Grow(ref float[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new float[length];
        }
    }
}

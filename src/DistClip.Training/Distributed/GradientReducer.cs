using System.Runtime.InteropServices;
using DistClip.Collectives;
using DistClip.Training.Steps;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Distributed;

/// <summary>
/// Sums gradients over ranks through one flat float buffer, stage by stage and bucket by bucket:
/// a stage the step has released (a tower whose backward has ended) is on the wire while the step
/// computes the next stage's gradients.
/// </summary>
/// <remarks>
/// On the CPU the buffer's views <em>are</em> the gradients: after the first reduction each
/// parameter's <c>grad</c> is replaced by a view into the buffer, and since the optimizer zeroes
/// gradients in place and autograd accumulates into an existing gradient in place, backward writes
/// straight into the buffer and packing costs nothing. Whoever replaces a gradient (Module.zero_grad
/// sets them to null; a checkpoint load may assign new ones) is noticed by address and copied in, and
/// the view is installed again. Elsewhere (CUDA, non-float32 parameters) gradients are copied into a
/// device-side flat tensor and staged through the host buffer one stage at a time.
/// </remarks>
internal sealed partial class GradientReducer : IDisposable
{
    private readonly ICollectiveGroup _group;
    private readonly int _bucketBytes;
    private GradientLayout? _layout;
    private float[] _host = [];
    private Tensor? _hostFlat; // [TotalFloats] CPU float32 over _host, shares its memory
    private Tensor? _deviceFlat; // _hostFlat itself on the CPU; [TotalFloats] on the parameters' device otherwise
    private Tensor[] _regions = []; // per parameter: a view of _deviceFlat shaped like it
    private bool[] _inPlace = []; // the region can be the gradient itself (CPU, float32)
    private bool[] _present = []; // this call: this rank has a gradient (else it contributes zeros)
    private bool _active; // a reduction is in progress
    private float[] _compact = []; // a row-sparse table's used rows, packed

    public GradientReducer(ICollectiveGroup group, int bucketBytes)
    {
        _group = group;
        _bucketBytes = bucketBytes;
    }

    /// <summary>
    /// In place: every parameter's gradient becomes the sum over ranks. A gradient null on every rank
    /// stays null; null on some ranks counts as zeros there.
    /// </summary>
    public void Reduce(IReadOnlyList<Parameter> parameters, CancellationToken ct)
    {
        using var reduction = Begin([parameters], null, ct);
        reduction.Release(0);
        reduction.Complete();
    }

    /// <summary>
    /// Starts a reduction of <paramref name="stages"/>' gradients that the caller feeds stage by stage
    /// (<see cref="IGradientReduction.Release"/>): each released stage goes on the wire in the
    /// background while the caller computes the next one's gradients.
    /// </summary>
    /// <param name="rowSparse">Tables that may go as rows (<see cref="RowSparseGradient"/>); null: none.</param>
    public IGradientReduction Begin(IReadOnlyList<IReadOnlyList<Parameter>> stages, IReadOnlyList<RowSparseGradient>? rowSparse, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(stages);
        if (_active)
        {
            throw new InvalidOperationException("A gradient reduction is already in progress on this reducer.");
        }

        // Row ids travel as float32, exact up to 2^24: a larger table goes dense.
        var sparse = (rowSparse ?? []).Where(r => r.Parameter.ndim == 2 && r.Parameter.shape[0] <= MaxSparseRows).ToList();
        var layout = EnsureLayout(stages, [.. sparse.Select(r => r.Parameter)]);
        var rows = new Dictionary<int, long[]>();
        foreach (var r in sparse)
        {
            int index = Array.IndexOf(layout.Parameters, r.Parameter);
            long tableRows = r.Parameter.shape[0];
            var local = r.Rows.Distinct().Order().ToArray();
            if (local.Length > 0 && (local[0] < 0 || local[^1] >= tableRows))
            {
                throw new ArgumentOutOfRangeException(nameof(rowSparse), $"Row ids must lie in [0, {tableRows}); got {local[0]}..{local[^1]}.");
            }

            rows[index] = local;
        }

        _active = true;
        return new Reduction(this, layout, rows, ct);
    }

    /// <summary>Row ids go as float32 (exact integers up to 2^24).</summary>
    internal const long MaxSparseRows = 1 << 24;

    /// <summary>How the last row-sparse bucket went: the union's row count and whether it went as rows (for tests and the bench).</summary>
    internal (int UnionRows, bool AsRows) LastSparse { get; private set; }

    /// <summary>Brings bucket <paramref name="bucket"/>'s gradients into the host buffer.</summary>
    private void Pack(GradientLayout layout, GradientLayout.Bucket bucket, Tensor?[] grads)
    {
        for (int i = bucket.First; i < bucket.End; i++)
        {
            var g = grads[i];
            if (!_present[i])
            {
                // An unused parameter on this rank: contribute zeros.
                _regions[i].zero_();
            }
            else if (!IsRegion(g!, i))
            {
                _regions[i].copy_(g!);
            }
        }

        if (!ReferenceEquals(_deviceFlat, _hostFlat))
        {
            int start = bucket.GradientStart(layout);
            int length = bucket.Start + bucket.Length - start;
            _hostFlat!.narrow(0, start, length).copy_(_deviceFlat!.narrow(0, start, length));
        }
    }

    /// <summary>Writes bucket <paramref name="bucket"/>'s sums back as the parameters' gradients.</summary>
    private void Unpack(GradientLayout layout, GradientLayout.Bucket bucket, Tensor?[] grads)
    {
        if (!ReferenceEquals(_deviceFlat, _hostFlat))
        {
            int start = bucket.GradientStart(layout);
            int length = bucket.Start + bucket.Length - start;
            _deviceFlat!.narrow(0, start, length).copy_(_hostFlat!.narrow(0, start, length));
        }

        for (int i = bucket.First; i < bucket.End; i++)
        {
            var p = layout.Parameters[i];
            var g = grads[i];

            // The stage's first bucket is reduced before anything is unpacked: the flag is now how many ranks had one.
            if (_host[layout.FlagIndex[i]] == 0f)
            {
                // Nobody had a gradient (so neither has this rank): leave none, as one process would;
                // AdamW skips a null gradient but would decay and move its moments on a zero one.
                continue;
            }

            if (g is not null && IsRegion(g, i))
            {
                continue; // the sum is already where the gradient lives
            }

            if (_inPlace[i])
            {
                // From now on backward accumulates straight into the buffer.
                p.grad = _regions[i];
            }
            else if (g is not null)
            {
                g.copy_(_regions[i]);
            }
            else
            {
                p.grad = _regions[i].to(p.dtype, copy: true);
            }
        }
    }

    /// <summary>How many of <paramref name="parameters"/>' gradients are views of the buffer right now.</summary>
    internal int GradientsInBuffer(IEnumerable<Parameter> parameters)
    {
        if (_layout is null)
        {
            return 0;
        }

        int count = 0;
        foreach (var p in parameters)
        {
            int index = Array.IndexOf(_layout.Parameters, p);
            using var grad = p.grad;
            count += index >= 0 && grad is not null && IsRegion(grad, index) ? 1 : 0;
        }

        return count;
    }

    /// <summary>Whether <paramref name="grad"/> is parameter <paramref name="index"/>'s view of the buffer.</summary>
    private bool IsRegion(Tensor grad, int index)
    {
        if (!_inPlace[index] || grad.device_type != DeviceType.CPU || grad.dtype != ScalarType.Float32 || !grad.is_contiguous())
        {
            return false;
        }

        var slot = _layout!.Slots[index];
        if (slot.Count == 0)
        {
            return grad.numel() == 0;
        }

        return grad.numel() == slot.Count
            && grad.shape.SequenceEqual(slot.Shape)
            && System.Runtime.CompilerServices.Unsafe.AreSame(
                ref MemoryMarshal.GetReference(grad.bytes),
                ref MemoryMarshal.GetReference(MemoryMarshal.AsBytes(_host.AsSpan((int)slot.Offset, 1))));
    }

    private GradientLayout EnsureLayout(IReadOnlyList<IReadOnlyList<Parameter>> stages, IReadOnlyCollection<Parameter> rowSparse)
    {
        if (_layout is not null && _layout.Matches(stages, rowSparse))
        {
            return _layout;
        }

        ReleaseBuffers();
        var layout = new GradientLayout(stages, _bucketBytes, rowSparse);
        var parameters = layout.Parameters;
        var device = parameters.Length > 0 ? parameters[0].device : torch.CPU;
        var devices = parameters.Select(p => p.device.ToString()).Distinct().ToList();
        if (devices.Count > 1)
        {
            throw new ArgumentException($"All parameters must be on one device; found {string.Join(", ", devices)}.", nameof(parameters));
        }

        // from_array pins the array for as long as libtorch holds the storage (the views installed as
        // gradients included); allocating it on the pinned heap keeps that long pin from fragmenting the GC heap.
        _host = GC.AllocateArray<float>(Math.Max(1, layout.TotalFloats), pinned: true);
        _hostFlat = torch.from_array(_host).DetachFromDisposeScope();
        bool cpu = device.type == DeviceType.CPU;
        _deviceFlat = cpu ? _hostFlat : torch.zeros(_host.Length, device: device).DetachFromDisposeScope();
        _regions = new Tensor[layout.Parameters.Length];
        _inPlace = new bool[layout.Parameters.Length];
        _present = new bool[layout.Parameters.Length];
        for (int i = 0; i < _regions.Length; i++)
        {
            var slot = layout.Slots[i];
            _regions[i] = _deviceFlat.narrow(0, slot.Offset, slot.Count).view(slot.Shape).DetachFromDisposeScope(); // shaped like the parameter
            _inPlace[i] = cpu && layout.Parameters[i].dtype == ScalarType.Float32;
        }

        _layout = layout;
        return layout;
    }

    private void ReleaseBuffers()
    {
        foreach (var region in _regions)
        {
            region.Dispose();
        }

        if (!ReferenceEquals(_deviceFlat, _hostFlat))
        {
            _deviceFlat?.Dispose();
        }

        _hostFlat?.Dispose();
        _regions = [];
        _inPlace = [];
        _hostFlat = null;
        _deviceFlat = null;
        _layout = null;
    }

    public void Dispose() => ReleaseBuffers();
}

using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Optimization.Fused;

/// <summary>
/// TorchSharp's AdamW with the update of each tensor done in one pass over its memory
/// (<see cref="AdamWKernel"/>) instead of nine libtorch ops; the same arithmetic, parameter groups,
/// learning rates, state objects and checkpoint bytes. Whatever the kernel does not cover (a
/// closure, AMSGrad, maximize, a tensor not contiguous float32 on the CPU) takes TorchSharp's own
/// step.
/// </summary>
/// <remarks>
/// Named <c>AdamW</c> on purpose: <c>save_state_dict</c> writes the optimizer's type name and
/// <c>load_state_dict</c> refuses another, so only under this name do checkpoints written by the
/// per-tensor AdamW and by this one load into each other. The moments stay TorchSharp's
/// <see cref="TorchSharp.Modules.AdamW.State"/> tensors, which the checkpoint and the finiteness
/// check read. With several intra-op threads the tensors are cut into chunks updated in parallel.
/// </remarks>
public sealed class AdamW : TorchSharp.Modules.AdamW
{
    // Elements per parallel work item: large enough that scheduling is noise, small enough to balance.
    private const int ChunkElements = 1 << 16;

    private float[] _root = [];
    private Tensor? _rootTensor; // [_root.Length] over _root, shares its memory

    public AdamW(IEnumerable<ParamGroup> groups, double lr, double beta1, double beta2, double eps, double weightDecay)
        : base(groups, lr, beta1, beta2, eps, weightDecay)
    {
    }

    /// <summary>Steps taken by the fused kernel (for tests: the fallback leaves it unchanged).</summary>
    internal long FusedSteps { get; private set; }

    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is not null)
        {
            return base.step(closure);
        }

        Step(1f);
        return null!;
    }

    /// <summary>
    /// One step with every gradient multiplied by <paramref name="gradientScale"/> first (the factor
    /// of <see cref="GradientClipping.Measure"/>); the gradients in memory are left as they are,
    /// except on TorchSharp's path, which scales them in place before its step.
    /// </summary>
    public void Step(float gradientScale)
    {
        var work = Collect();
        if (work is null)
        {
            if (gradientScale != 1f)
            {
                using var noGrad = torch.no_grad();
                foreach (var p in ParamGroups.Cast<ParamGroup>().SelectMany(g => g.Parameters))
                {
                    using var grad = p.grad;
                    grad?.mul_(gradientScale);
                }
            }

            base.step();
            return;
        }

        try
        {
            foreach (var item in work)
            {
                item.State.step += 1;
            }

            Run(work, gradientScale);
            FusedSteps++;
        }
        finally
        {
            foreach (var item in work)
            {
                item.Grad.Dispose();
            }
        }
    }

    /// <summary>Every tensor to update (those with a gradient), or null when one of them needs TorchSharp's step.</summary>
    private List<Item>? Collect()
    {
        var states = state_dict().State;
        var work = new List<Item>();
        int k = 0;
        bool fusable = true;
        foreach (var group in ParamGroups.Cast<ParamGroup>())
        {
            var options = group.Options;
            fusable &= options.amsgrad != true && options.maximize != true;
            foreach (var p in group.Parameters)
            {
                var state = (State)states[k++];
                var grad = p.grad;
                if (grad is null)
                {
                    continue; // TorchSharp skips it too: no decay, no step count
                }

                work.Add(new Item(p, grad, state, options));
                fusable &= IsFlatFloat(p) && IsFlatFloat(grad) && IsFlatFloat(state.exp_avg) && IsFlatFloat(state.exp_avg_sq)
                    && grad.numel() == p.numel() && state.exp_avg.numel() == p.numel() && state.exp_avg_sq.numel() == p.numel();
            }
        }

        // The √v buffer is one array, indexed with int.
        fusable &= work.Sum(item => item.Param.numel()) <= Array.MaxLength;
        if (fusable)
        {
            return work;
        }

        foreach (var item in work)
        {
            item.Grad.Dispose();
        }

        return null;
    }

    private static bool IsFlatFloat(Tensor t) => t.dtype == ScalarType.Float32 && t.device_type == DeviceType.CPU && t.is_contiguous();

    private void Run(List<Item> work, float gradientScale)
    {
        var coefficients = new AdamWKernel.Coefficients[work.Count];
        var offsets = new int[work.Count]; // of each tensor's √v in _root
        int total = 0;
        for (int i = 0; i < work.Count; i++)
        {
            var o = work[i].Options;
            coefficients[i] = AdamWKernel.Coefficients.For(o.LearningRate!.Value, o.beta1!.Value, o.beta2!.Value, o.eps!.Value, o.weight_decay!.Value, work[i].State.step, gradientScale);
            offsets[i] = total;
            total += (int)work[i].Param.numel();
        }

        EnsureRoot(total);
        int threads = torch.get_num_threads();
        ForEachChunk(work, threads, (i, start, length) => AdamWKernel.Moments(Floats(work[i].Grad).Slice(start, length),
            Floats(work[i].State.exp_avg).Slice(start, length), Floats(work[i].State.exp_avg_sq).Slice(start, length),
            _root.AsSpan(offsets[i] + start, length), coefficients[i]));
        using (var scope = torch.NewDisposeScope())
        {
            _rootTensor!.narrow(0, 0, total).sqrt_();
        }

        ForEachChunk(work, threads, (i, start, length) => AdamWKernel.Apply(Floats(work[i].Param).Slice(start, length),
            Floats(work[i].State.exp_avg).Slice(start, length), _root.AsSpan(offsets[i] + start, length), coefficients[i]));
    }

    /// <summary>Runs <paramref name="body"/> over every tensor, in chunks spread over <paramref name="threads"/> threads when there are several.</summary>
    private static void ForEachChunk(List<Item> work, int threads, Action<int, int, int> body)
    {
        if (threads <= 1)
        {
            for (int i = 0; i < work.Count; i++)
            {
                body(i, 0, (int)work[i].Param.numel());
            }

            return;
        }

        var chunks = new List<(int Item, int Start, int Length)>();
        for (int i = 0; i < work.Count; i++)
        {
            int n = (int)work[i].Param.numel();
            for (int start = 0; start < n; start += ChunkElements)
            {
                chunks.Add((i, start, Math.Min(ChunkElements, n - start)));
            }
        }

        Parallel.For(0, chunks.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, c => body(chunks[c].Item, chunks[c].Start, chunks[c].Length));
    }

    /// <summary>A flat buffer for every tensor's √v, kept between steps (allocating it each step costs page faults).</summary>
    private void EnsureRoot(int floats)
    {
        if (_root.Length >= floats && _rootTensor is not null)
        {
            return;
        }

        _rootTensor?.Dispose();
        // from_array pins the array while libtorch holds it; the pinned heap keeps that from fragmenting the GC heap.
        _root = GC.AllocateArray<float>(Math.Max(1, floats), pinned: true);
        _rootTensor = torch.from_array(_root).DetachFromDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _rootTensor?.Dispose();
            _rootTensor = null;
        }

        base.Dispose(disposing);
    }

    /// <summary>The tensor's memory, writable, without a copy (contiguous float32 on the CPU).</summary>
    private static Span<float> Floats(Tensor t) => MemoryMarshal.Cast<byte, float>(t.bytes);

    private readonly record struct Item(Parameter Param, Tensor Grad, State State, Options Options);
}

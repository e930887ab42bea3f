using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Optimization.Fused;

/// <summary>
/// TorchSharp's AdamW with the update done block by block in two passes over cache-resident blocks
/// (<see cref="AdamWKernel"/>) instead of nine libtorch ops per tensor; the same arithmetic,
/// parameter groups, learning rates, state objects and checkpoint bytes. Whatever the kernel does not cover (a
/// closure, AMSGrad, maximize, a tensor not contiguous float32 on the CPU, CUDA) takes TorchSharp's
/// step written out again with its Scalars kept alive (<see cref="TensorStep"/>).
/// </summary>
/// <remarks>
/// Named <c>AdamW</c> on purpose: <c>save_state_dict</c> writes the optimizer's type name and
/// <c>load_state_dict</c> refuses another, so only under this name do checkpoints written by the
/// per-tensor AdamW and by this one load into each other. The moments stay TorchSharp's
/// <see cref="TorchSharp.Modules.AdamW.State"/> tensors, which the checkpoint and the finiteness
/// check read. With several intra-op threads the blocks are updated in parallel, each thread with its own root buffer.
/// </remarks>
public sealed class AdamW : TorchSharp.Modules.AdamW
{
    private readonly System.Collections.Concurrent.ConcurrentBag<RootBuffer> _roots = [];

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
            return TensorStep(closure)!;
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
                using var factor = gradientScale.ToScalar();
                foreach (var p in ParamGroups.Cast<ParamGroup>().SelectMany(g => g.Parameters))
                {
                    using var grad = p.grad;
                    grad?.mul_(factor);
                }
            }

            TensorStep();
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

    /// <summary>Steps taken by <see cref="TensorStep"/> (for tests).</summary>
    internal long TensorSteps { get; private set; }

    /// <summary>
    /// TorchSharp's AdamW step op for op (libtorch ops per tensor: any device and dtype, AMSGrad,
    /// maximize), with every Scalar kept alive through its call (DC0001, docs/torchsharp.md "Scalar
    /// lifetimes"): TorchSharp's own step passes each hyper-parameter as a temporary Scalar that its
    /// finalizer may free while libtorch reads it. The same ops on the same values: the same bits.
    /// </summary>
    /// <returns>What <paramref name="closure"/> returned; null without one.</returns>
    private Tensor? TensorStep(Func<Tensor>? closure = null)
    {
        var loss = PerTensorStep.Run<ParamGroup, State>(this, closure, (group, items) =>
        {
            var o = group.Options;
            double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value, lr = o.LearningRate!.Value;
            using var decay = (1.0 - (lr * o.weight_decay!.Value)).ToScalar();
            using var keep1 = beta1.ToScalar();
            using var take1 = (1.0 - beta1).ToScalar();
            using var keep2 = beta2.ToScalar();
            using var take2 = (1.0 - beta2).ToScalar();
            using var eps = o.eps!.Value.ToScalar();
            foreach (var (p, g, state) in items)
            {
                var grad = o.maximize == true ? -g : g;
                state.step++;
                p.mul_(decay);
                double correction1 = 1.0 - Math.Pow(beta1, state.step);
                double correction2 = 1.0 - Math.Pow(beta2, state.step);
                state.exp_avg.mul_(keep1).add_(grad, take1);
                state.exp_avg_sq.mul_(keep2).addcmul_(grad, grad, take2);
                var second = state.exp_avg_sq;
                if (o.amsgrad == true)
                {
                    var previous = state.max_exp_avg_sq;
                    state.max_exp_avg_sq = torch.maximum(previous, state.exp_avg_sq).DetachFromDisposeScope();
                    previous.Dispose();
                    second = state.max_exp_avg_sq;
                }

                using var root = Math.Sqrt(correction2).ToScalar();
                using var stepSize = (0.0 - (lr / correction1)).ToScalar();
                p.addcdiv_(state.exp_avg, second.sqrt().div(root).add_(eps), stepSize);
            }
        });
        TensorSteps++;
        return loss;
    }

    /// <summary>Every tensor to update (those with a gradient), or null when one of them needs the per-tensor step.</summary>
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

        // Spans index with int.
        fusable &= work.All(item => item.Param.numel() <= Array.MaxLength);
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
        for (int i = 0; i < work.Count; i++)
        {
            var o = work[i].Options;
            coefficients[i] = AdamWKernel.Coefficients.For(o.LearningRate!.Value, o.beta1!.Value, o.beta2!.Value, o.eps!.Value, o.weight_decay!.Value, work[i].State.step, gradientScale);
        }

        var blocks = Blocks(work);
        int threads = Math.Min(torch.get_num_threads(), blocks.Count);
        if (threads <= 1)
        {
            var root = Rent();
            foreach (var block in blocks)
            {
                Update(work, coefficients, block, root);
            }

            _roots.Add(root);
            return;
        }

        Parallel.For(0, blocks.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, Rent,
            (b, _, root) =>
            {
                Update(work, coefficients, blocks[b], root);
                return root;
            },
            _roots.Add);
    }

    /// <summary>Cuts every tensor into segments and packs consecutive segments into blocks of at most <see cref="AdamWKernel.BlockElements"/>.</summary>
    private static List<Segment[]> Blocks(List<Item> work)
    {
        var blocks = new List<Segment[]>();
        var current = new List<Segment>();
        int filled = 0;
        for (int i = 0; i < work.Count; i++)
        {
            int n = (int)work[i].Param.numel();
            for (int start = 0; start < n;)
            {
                int length = Math.Min(n - start, AdamWKernel.BlockElements - filled);
                current.Add(new Segment(i, start, length, filled));
                filled += length;
                start += length;
                if (filled == AdamWKernel.BlockElements)
                {
                    blocks.Add([.. current]);
                    current.Clear();
                    filled = 0;
                }
            }
        }

        if (current.Count > 0)
        {
            blocks.Add([.. current]);
        }

        return blocks;
    }

    /// <summary>Both passes over one block, its roots in <paramref name="root"/> (libtorch's sqrt between them).</summary>
    private static void Update(List<Item> work, AdamWKernel.Coefficients[] coefficients, Segment[] block, RootBuffer root)
    {
        foreach (var s in block)
        {
            var item = work[s.Item];
            AdamWKernel.Moments(Floats(item.Grad).Slice(s.Start, s.Length), Floats(item.State.exp_avg).Slice(s.Start, s.Length),
                Floats(item.State.exp_avg_sq).Slice(s.Start, s.Length), root.Values.AsSpan(s.At, s.Length), coefficients[s.Item]);
        }

        // The whole buffer, past the block's end too (stale values there are never read): one native
        // call, no narrowed tensor to make and dispose.
        var result = root.Tensor.sqrt_();
        if (!ReferenceEquals(result, root.Tensor))
        {
            result.Dispose();
        }

        foreach (var s in block)
        {
            var item = work[s.Item];
            AdamWKernel.Apply(Floats(item.Param).Slice(s.Start, s.Length), Floats(item.State.exp_avg).Slice(s.Start, s.Length),
                root.Values.AsSpan(s.At, s.Length), coefficients[s.Item]);
        }
    }

    /// <summary>A block-sized root buffer from the pool (one per thread at work), made the first time.</summary>
    private RootBuffer Rent()
    {
        if (_roots.TryTake(out var root))
        {
            return root;
        }

        // from_array pins the array while libtorch holds it; the pinned heap keeps that from fragmenting the GC heap.
        var values = GC.AllocateArray<float>(AdamWKernel.BlockElements, pinned: true);
        return new RootBuffer(values, torch.from_array(values).DetachFromDisposeScope());
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            while (_roots.TryTake(out var root))
            {
                root.Tensor.Dispose();
            }
        }

        base.Dispose(disposing);
    }

    /// <summary>The tensor's memory, writable, without a copy (contiguous float32 on the CPU).</summary>
    private static Span<float> Floats(Tensor t) => MemoryMarshal.Cast<byte, float>(t.bytes);

    private readonly record struct Item(Parameter Param, Tensor Grad, State State, Options Options);

    /// <summary>Elements [Start, Start + Length) of work item <paramref name="Item"/>, at <paramref name="At"/> in its block's root buffer.</summary>
    private readonly record struct Segment(int Item, int Start, int Length, int At);

    /// <summary>A pinned block-sized array and the tensor over it that libtorch's sqrt_ takes.</summary>
    private sealed record RootBuffer(float[] Values, Tensor Tensor);
}

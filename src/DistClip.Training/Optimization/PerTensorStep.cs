using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Optimization;

/// <summary>
/// The frame of an optimizer step written out per tensor (<see cref="Fused.AdamW"/>'s per-tensor
/// path, <see cref="SGD"/>), as TorchSharp's own steps run: the closure (if any) with autograd, then
/// without autograd and inside a dispose scope each parameter group with the parameters that have a
/// gradient and their TorchSharp states.
/// </summary>
internal static class PerTensorStep
{
    /// <param name="closure">Recomputes the loss before the step (null: none).</param>
    /// <param name="group">Called once per group, in order, with the group and its parameters that have a gradient.</param>
    /// <returns>What <paramref name="closure"/> returned; null without one.</returns>
    public static Tensor? Run<TGroup, TState>(
        OptimizerHelper optimizer, Func<Tensor>? closure, Action<TGroup, IReadOnlyList<(Parameter Parameter, Tensor Grad, TState State)>> group)
        where TGroup : ParamGroup
        where TState : OptimizerState
    {
        Tensor? loss = null;
        if (closure is not null)
        {
            using (torch.enable_grad())
            {
                loss = closure();
            }
        }

        var states = optimizer.state_dict().State;
        int k = 0;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        foreach (var g in optimizer.ParamGroups.Cast<TGroup>())
        {
            var items = new List<(Parameter, Tensor, TState)>();
            foreach (var p in g.Parameters)
            {
                var state = (TState)states[k++];
                if (p.grad is { } grad)
                {
                    items.Add((p, grad, state)); // TorchSharp skips a parameter without one: no decay, no step count
                }
            }

            group(g, items);
        }

        return loss;
    }
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Optimization;

/// <summary>
/// TorchSharp's SGD (weight decay, momentum with dampening, Nesterov, maximize) with its step written
/// out op for op, every Scalar kept alive through its libtorch call (DC0001, docs/torchsharp.md
/// "Scalar lifetimes"): TorchSharp's own step passes the learning rate and the other factors as
/// temporary Scalars that a finalizer may free while libtorch reads them. The same ops on the same
/// values give the same bits.
/// </summary>
/// <remarks>
/// Named <c>SGD</c> on purpose, as <see cref="Fused.AdamW"/> is named AdamW: <c>save_state_dict</c>
/// writes the optimizer's type name and <c>load_state_dict</c> refuses another.
/// </remarks>
public sealed class SGD : TorchSharp.Modules.SGD
{
    public SGD(IEnumerable<Parameter> parameters, double lr, double momentum = 0, double dampening = 0, double weightDecay = 0, bool nesterov = false, bool maximize = false)
        : base(parameters, lr, momentum, dampening, weightDecay, nesterov, maximize)
    {
    }

    public override Tensor step(Func<Tensor>? closure = null)
    {
        var loss = PerTensorStep.Run<ParamGroup, State>(this, closure, (group, items) =>
        {
            var o = group.Options;
            double momentum = o.momentum!.Value, weightDecay = o.weight_decay!.Value, lr = o.LearningRate!.Value;
            using var decay = weightDecay.ToScalar();
            using var keep = momentum.ToScalar();
            using var take = (1.0 - o.dampening!.Value).ToScalar();
            using var rate = (o.maximize == true ? lr : 0.0 - lr).ToScalar();
            foreach (var (p, g, state) in items)
            {
                var grad = weightDecay != 0.0 ? g.add(p, decay) : g;
                if (momentum != 0.0)
                {
                    var buffer = state.momentum_buffer;
                    if (buffer is null)
                    {
                        buffer = grad.clone().detach().DetachFromDisposeScope();
                    }
                    else
                    {
                        buffer.mul_(keep).add_(grad, take);
                    }

                    state.momentum_buffer = buffer;
                    grad = o.nesterov == true ? grad.add(buffer, keep) : buffer;
                }

                p.add_(grad, rate);
            }
        });

        return loss!;
    }
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Layers;

/// <summary>
/// Parameters with CLIP's initial values. Everything draws from the global generator, so a model
/// built after torch.manual_seed(s) is the same on every rank.
/// </summary>
internal static class Init
{
    // A parameter belongs to its module, not to whatever dispose scope is open while the model is
    // built (TorchSharp's own layers do the same): a model built inside a training-step scope
    // must outlive it.

    public static Parameter NormalParameter(double std, params long[] shape)
    {
        var parameter = new Parameter(empty(shape));
        parameter.DetachFromDisposeScope();
        Normal_(parameter, std);
        return parameter;
    }

    public static Parameter ConstantParameter(double value, params long[] shape)
    {
        var parameter = new Parameter(empty(shape));
        parameter.DetachFromDisposeScope();
        using var fill = value.ToScalar();
        nn.init.constant_(parameter, fill);
        return parameter;
    }

    /// <summary>In place, outside autograd: N(0, std²).</summary>
    public static void Normal_(Tensor tensor, double std) => nn.init.normal_(tensor, 0, std);

    public static void Zeros_(Tensor tensor) => nn.init.zeros_(tensor);
}

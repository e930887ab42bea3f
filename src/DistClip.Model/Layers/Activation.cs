using DistClip.Config;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Layers;

internal static class Activation
{
    private static readonly Scalar QuickGeluSlope = 1.702.ToScalar();

    /// <summary>The activation a config names (<see cref="Activations"/>).</summary>
    public static Func<Tensor, Tensor> Of(string name) => name switch
    {
        Activations.Gelu => F.gelu,
        // OpenAI's QuickGELU: the sigmoid approximation their released weights expect.
        Activations.QuickGelu => x => x * F.sigmoid(x.mul(QuickGeluSlope)),
        _ => throw new ArgumentException($"unknown activation '{name}'", nameof(name)),
    };
}

using DistClip.Config;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Layers;

internal static class Activation
{
    /// <summary>The activation a config names (<see cref="Activations"/>).</summary>
    public static Func<Tensor, Tensor> Of(string name) => name switch
    {
        Activations.Gelu => F.gelu,
        // OpenAI's QuickGELU: the sigmoid approximation their released weights expect.
        Activations.QuickGelu => x => x * F.sigmoid(1.702 * x),
        _ => throw new ArgumentException($"unknown activation '{name}'", nameof(name)),
    };
}

using static TorchSharp.torch;

namespace DistClip.Model;

public static class Features
{
    /// <summary>Rows scaled to unit L2 norm: [N, E] → [N, E] (an all-zero row stays zero).</summary>
    public static Tensor Normalize(Tensor x) => nn.functional.normalize(x, p: 2, dim: 1);
}

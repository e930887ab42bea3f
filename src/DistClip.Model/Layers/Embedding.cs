using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Layers;

/// <summary>
/// A lookup table (state-dict name <c>weight</c>, like nn.Embedding). Ours rather than TorchSharp's:
/// in 0.107 an nn.Embedding built inside a dispose scope loses its weight when the scope closes.
/// </summary>
internal sealed class Embedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    public Embedding(int count, int width, double std)
        : base(nameof(Embedding))
    {
        weight = Init.NormalParameter(std, count, width);
        RegisterComponents();
    }

    /// <summary>The [count, width] table.</summary>
    public Parameter Weight => weight;

    /// <param name="ids">int64 of any shape S</param>
    /// <returns>[S..., W]</returns>
    public override Tensor forward(Tensor ids) =>
        weight.index_select(0, ids.flatten()).view([.. ids.shape, weight.shape[1]]);
}

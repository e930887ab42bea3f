using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Layers;

/// <summary>The size of a transformer stack, shared by the vision and text towers.</summary>
internal sealed record TransformerShape(int Width, int Layers, int Heads, double MlpRatio, string Activation)
{
    public int MlpWidth => (int)Math.Round(Width * MlpRatio);
}

/// <summary>A stack of pre-norm residual attention blocks (CLIP's Transformer).</summary>
internal sealed class TransformerStack : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<ResidualAttentionBlock> resblocks;

    public TransformerStack(TransformerShape shape, bool causal)
        : base(nameof(TransformerStack))
    {
        resblocks = nn.ModuleList([.. Enumerable.Range(0, shape.Layers).Select(_ => new ResidualAttentionBlock(shape, causal))]);
        RegisterComponents();
    }

    /// <param name="x">[N, L, W]</param>
    /// <param name="keyMask">[N, L] bool, true where a key may be attended; null: all.</param>
    public override Tensor forward(Tensor x, Tensor? keyMask) => Forward(x, keyMask, null);

    /// <summary>The stack, cut (when <paramref name="cuts"/> is given) before each half of each block.</summary>
    public Tensor Forward(Tensor x, Tensor? keyMask, BackwardCuts? cuts)
    {
        foreach (var block in resblocks)
        {
            x = cuts is null ? block.call(x, keyMask) : block.Forward(x, keyMask, cuts);
        }

        return x;
    }

    /// <summary>The blocks, first to last.</summary>
    public IReadOnlyList<ResidualAttentionBlock> Blocks => [.. resblocks];
}

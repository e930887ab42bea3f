using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Layers;

/// <summary>Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>
internal sealed class ResidualAttentionBlock : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly SelfAttention attn;
    private readonly LayerNorm ln_1;
    private readonly Mlp mlp;
    private readonly LayerNorm ln_2;

    public ResidualAttentionBlock(TransformerShape shape, bool causal)
        : base(nameof(ResidualAttentionBlock))
    {
        // CLIP's initialize_parameters: residual projections shrink with depth so the stream's
        // variance does not grow with the number of blocks.
        var attnStd = Math.Pow(shape.Width, -0.5);
        var projStd = attnStd * Math.Pow(2 * shape.Layers, -0.5);
        var fcStd = Math.Pow(2 * shape.Width, -0.5);
        attn = new SelfAttention(shape.Width, shape.Heads, causal, attnStd, projStd);
        ln_1 = nn.LayerNorm(shape.Width);
        mlp = new Mlp(shape.Width, shape.MlpWidth, shape.Activation, fcStd, projStd);
        ln_2 = nn.LayerNorm(shape.Width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? keyMask) => Forward(x, keyMask, null);

    /// <summary>The block, cut (when <paramref name="cuts"/> is given) before each of its two halves.</summary>
    public Tensor Forward(Tensor x, Tensor? keyMask, BackwardCuts? cuts)
    {
        x = cuts?.Cut(x) ?? x;
        x = x + attn.call(ln_1.call(x), keyMask);
        x = cuts?.Cut(x) ?? x;
        return x + mlp.call(ln_2.call(x));
    }

    /// <summary>The attention half's parameters (ln_1, attn): the segment between the block's two cuts.</summary>
    public IReadOnlyList<Parameter> AttentionHalf() => [.. ln_1.parameters(), .. attn.parameters()];

    /// <summary>The MLP half's parameters (ln_2, mlp): the segment above the block's second cut.</summary>
    public IReadOnlyList<Parameter> MlpHalf() => [.. ln_2.parameters(), .. mlp.parameters()];
}

using DistClip.Config;
using DistClip.Model.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Vision;

/// <summary>
/// CLIP's ViT: patches by a strided convolution, a class token, learned positions, pre-norm
/// transformer, LayerNorm on the class token, linear projection to the joint space.
/// </summary>
internal sealed class VisionTransformer : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly Parameter class_embedding;
    private readonly Parameter positional_embedding;
    private readonly LayerNorm ln_pre;
    private readonly TransformerStack transformer;
    private readonly LayerNorm ln_post;
    private readonly Parameter proj;

    public VisionTransformer(VisionConfig config, int embedDim)
        : base(nameof(VisionTransformer))
    {
        var width = config.Width;
        var grid = config.ImageSize / config.PatchSize;
        var scale = Math.Pow(width, -0.5);
        conv1 = nn.Conv2d(config.Channels, width, config.PatchSize, stride: config.PatchSize, bias: false);
        class_embedding = Init.NormalParameter(scale, width);
        positional_embedding = Init.NormalParameter(scale, grid * grid + 1, width);
        ln_pre = nn.LayerNorm(width);
        transformer = new TransformerStack(new TransformerShape(width, config.Layers, config.Heads, config.MlpRatio, config.Activation), causal: false);
        ln_post = nn.LayerNorm(width);
        proj = Init.NormalParameter(scale, width, embedDim);
        RegisterComponents();
    }

    /// <param name="images">[N, C, H, W]</param>
    /// <returns>[N, E]</returns>
    public override Tensor forward(Tensor images) => Forward(images, null);

    /// <summary>
    /// The tower's parameters by the segments <see cref="Forward"/> cuts it into, top first: ln_post,
    /// proj and the last block's MLP half; then each block's attention half and the MLP half below it;
    /// last the patch embedding, class token, positions and ln_pre.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<Parameter>> Segments()
    {
        var blocks = transformer.Blocks;
        List<Parameter> top = [.. ln_post.parameters(), proj, .. blocks[^1].MlpHalf()];
        var segments = new List<IReadOnlyList<Parameter>> { top };
        for (int i = blocks.Count - 1; i >= 0; i--)
        {
            segments.Add(blocks[i].AttentionHalf());
            if (i > 0)
            {
                segments.Add(blocks[i - 1].MlpHalf());
            }
        }

        segments.Add([.. conv1.parameters(), class_embedding, positional_embedding, .. ln_pre.parameters()]);
        return segments;
    }

    /// <param name="images">[N, C, H, W]</param>
    /// <param name="cuts">Where given, the graph is cut before each half of each block (see <see cref="Segments"/>).</param>
    /// <returns>[N, E]</returns>
    public Tensor Forward(Tensor images, BackwardCuts? cuts)
    {
        var x = conv1.call(images); // [N, W, g, g]
        var (n, w) = (x.shape[0], x.shape[1]);
        x = x.flatten(2).transpose(1, 2); // [N, g², W]
        var cls = class_embedding.view(1, 1, w).expand(n, 1, w); // [N, 1, W]
        x = cat([cls, x], dim: 1) + positional_embedding; // [N, g²+1, W]
        x = cuts is null ? transformer.call(ln_pre.call(x), null) : transformer.Forward(ln_pre.call(x), null, cuts);
        var pooled = ln_post.call(x[.., 0, ..]); // [N, W]: the class token
        return pooled.matmul(proj); // [N, E]
    }
}

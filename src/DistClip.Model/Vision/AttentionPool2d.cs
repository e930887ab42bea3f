using DistClip.Model.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Vision;

/// <summary>
/// CLIP's replacement for global average pooling: the mean of the feature map, prepended as a
/// token, attends once over all positions (QKV attention with learned positions) and is projected.
/// </summary>
internal sealed class AttentionPool2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter positional_embedding;
    private readonly Linear k_proj;
    private readonly Linear q_proj;
    private readonly Linear v_proj;
    private readonly Linear c_proj;
    private readonly int heads;

    public AttentionPool2d(int spatialDim, int width, int heads, int outputDim)
        : base(nameof(AttentionPool2d))
    {
        this.heads = heads;
        positional_embedding = Init.NormalParameter(Math.Pow(width, -0.5), spatialDim * spatialDim + 1, width);
        k_proj = nn.Linear(width, width);
        q_proj = nn.Linear(width, width);
        v_proj = nn.Linear(width, width);
        c_proj = nn.Linear(width, outputDim);
        // CLIP's initialize_parameters: std = c_proj.in_features^-0.5 for all four projections.
        var std = Math.Pow(width, -0.5);
        foreach (var linear in new[] { q_proj, k_proj, v_proj, c_proj })
        {
            Init.Normal_(linear.weight, std);
        }

        RegisterComponents();
    }

    /// <param name="features">[N, C, H, W]</param>
    /// <returns>[N, output]</returns>
    public override Tensor forward(Tensor features)
    {
        var (n, c) = (features.shape[0], features.shape[1]);
        var x = features.flatten(2).transpose(1, 2); // [N, HW, C]
        x = cat([x.mean([1], keepdim: true), x], dim: 1) + positional_embedding; // [N, HW+1, C]
        var l = x.shape[1];
        var d = c / heads;
        var q = q_proj.call(x[.., ..1, ..]).view(n, 1, heads, d).transpose(1, 2); // [N, H, 1, D]: the mean token asks
        var k = k_proj.call(x).view(n, l, heads, d).transpose(1, 2); // [N, H, HW+1, D]
        var v = v_proj.call(x).view(n, l, heads, d).transpose(1, 2); // [N, H, HW+1, D]
        var y = F.scaled_dot_product_attention(q, k, v); // [N, H, 1, D]
        return c_proj.call(y.transpose(1, 2).reshape(n, c)); // [N, output]
    }
}

using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Layers;

/// <summary>
/// Multi-head self-attention, batch-first, with the parameter layout of PyTorch's
/// nn.MultiheadAttention (one packed in_proj for q, k, v; an out_proj) so OpenAI weights load by name.
/// </summary>
internal sealed class SelfAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly int heads;
    private readonly bool causal;

    public SelfAttention(int width, int heads, bool causal, double inStd, double outStd)
        : base(nameof(SelfAttention))
    {
        this.heads = heads;
        this.causal = causal;
        in_proj_weight = Init.NormalParameter(inStd, 3 * width, width);
        in_proj_bias = Init.ConstantParameter(0, 3 * width);
        out_proj = nn.Linear(width, width);
        Init.Normal_(out_proj.weight, outStd);
        Init.Zeros_(out_proj.bias!);
        RegisterComponents();
    }

    /// <param name="x">[N, L, W]</param>
    /// <param name="keyMask">[N, L] bool, true where a key may be attended (not padding); null: all.</param>
    public override Tensor forward(Tensor x, Tensor? keyMask)
    {
        var (n, l, w) = (x.shape[0], x.shape[1], x.shape[2]);
        var qkv = F.linear(x, in_proj_weight, in_proj_bias); // [N, L, 3W]
        var split = qkv.view(n, l, 3, heads, w / heads).permute(2, 0, 3, 1, 4); // [3, N, H, L, D]
        var (q, k, v) = (split[0], split[1], split[2]);
        // A boolean mask broadcasts over heads and queries; libtorch refuses a mask together with is_causal.
        var mask = keyMask?.view(n, 1, 1, l); // [N, 1, 1, L]
        var y = F.scaled_dot_product_attention(q, k, v, mask, is_casual: causal && mask is null); // [N, H, L, D]
        return out_proj.call(y.transpose(1, 2).reshape(n, l, w)); // [N, L, W]
    }
}

using TorchSharp;
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
        var mask = keyMask?.view(n, 1, 1, l); // [N, 1, 1, L]: broadcasts over heads and queries
        // On a GPU libtorch's fused kernel (flash or memory-efficient attention) is the fast one; on the
        // CPU it is several times slower than the two matmuls at CLIP's lengths (docs/torchsharp.md).
        // libtorch refuses a mask together with is_causal; the model never has both (BERT masks, causal does not).
        var y = x.device_type == TorchSharp.DeviceType.CPU
            ? Attend(q, k, v, mask, causal)
            : F.scaled_dot_product_attention(q, k, v, mask, is_casual: causal && mask is null); // [N, H, L, D]
        return out_proj.call(y.transpose(1, 2).reshape(n, l, w)); // [N, L, W]
    }

    /// <summary>
    /// softmax(q kᵀ / √d + mask) v, written out as two batched matmuls and a softmax. On the CPU this is
    /// far faster than libtorch's fused scaled_dot_product_attention at CLIP's lengths (forward and
    /// backward 6–7 ms against 45 ms per clip-tiny layer at 2 threads; docs/torchsharp.md), and it is
    /// what PyTorch's nn.MultiheadAttention computes.
    /// </summary>
    /// <param name="q">[N, H, L, D]; <paramref name="k"/> and <paramref name="v"/> likewise.</param>
    /// <param name="keyMask">[N, 1, 1, L] bool, true where a key may be attended; null: all.</param>
    /// <param name="causal">Whether a query may see only the keys at or before its own position.</param>
    internal static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? keyMask, bool causal)
    {
        long l = q.shape[2];
        using var scale = Math.Pow(q.shape[3], -0.5).ToScalar();
        var scores = q.matmul(k.transpose(-2, -1)).mul_(scale); // [N, H, L, L]
        if (causal)
        {
            using var future = ones(l, l, ScalarType.Bool, q.device).triu_(1);
            scores = scores.masked_fill(future, Scalars.NegativeInfinity);
        }

        if (keyMask is not null)
        {
            using var hidden = keyMask.logical_not();
            scores = scores.masked_fill(hidden, Scalars.NegativeInfinity);
        }

        return scores.softmax(-1).matmul(v);
    }
}

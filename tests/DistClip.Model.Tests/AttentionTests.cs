using DistClip.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Tests;

/// <summary>The CPU attention path (plain matmuls) against libtorch's fused kernel, values and gradients.</summary>
public class AttentionTests
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Plain_attention_equals_scaled_dot_product_attention_forward_and_backward(bool causal, bool keyMask)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(7);
        long n = 3, h = 4, l = 9, d = 16;
        var inputs = Enumerable.Range(0, 3).Select(_ => torch.randn(n, h, l, d)).ToArray();
        var grad = torch.randn(n, h, l, d);
        // Rows of lengths 9, 4 and 1: padding after them, never attended.
        var mask = keyMask ? torch.arange(l).view(1, l).lt(torch.tensor(new long[] { 9, 4, 1 }).view(n, 1)).view(n, 1, 1, l) : null;

        var (ours, ourGrads) = Run(inputs, grad, (q, k, v) => SelfAttention.Attend(q, k, v, mask, causal));
        var (fused, fusedGrads) = Run(inputs, grad, (q, k, v) => F.scaled_dot_product_attention(q, k, v, mask, is_casual: causal));

        Assert.True(ours.allclose(fused, rtol: 1e-5, atol: 1e-6), $"outputs differ by {(ours - fused).abs().max().item<float>()}");
        for (int i = 0; i < 3; i++)
        {
            Assert.True(ourGrads[i].allclose(fusedGrads[i], rtol: 1e-4, atol: 1e-5), $"gradient {i} differs by {(ourGrads[i] - fusedGrads[i]).abs().max().item<float>()}");
        }
    }

    private static (Tensor Output, Tensor[] Grads) Run(Tensor[] inputs, Tensor grad, Func<Tensor, Tensor, Tensor, Tensor> attend)
    {
        var leaves = inputs.Select(t => t.clone().requires_grad_()).ToArray();
        var y = attend(leaves[0], leaves[1], leaves[2]);
        torch.autograd.backward([y], [grad]);
        return (y.detach(), leaves.Select(t => t.grad!).ToArray());
    }
}

using DistClip.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Tests;

/// <summary>
/// The model's written-out attention (<see cref="SelfAttention.Attend"/>) against libtorch's fused
/// scaled_dot_product_attention, which it replaced for speed: same outputs and gradients for causal,
/// key-masked and unmasked attention, and masked or future keys never reach a query.
/// </summary>
public class AttentionTests
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Written_out_attention_matches_the_fused_kernel_forward_and_backward(bool causal, bool masked)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var (q, k, v) = (randn(6, 4, 17, 16).requires_grad_(), randn(6, 4, 17, 16).requires_grad_(), randn(6, 4, 17, 16).requires_grad_());
        var lengths = tensor(new long[] { 17, 1, 5, 9, 16, 12 });
        using var length = 17.ToScalar();
        var keyMask = masked ? (arange(length).unsqueeze(0) < lengths.unsqueeze(1)).view(6, 1, 1, 17) : null;
        var upstream = randn(6, 4, 17, 16);

        var ours = SelfAttention.Attend(q, k, v, keyMask, causal);
        var ourGrads = torch.autograd.grad([ours], [q, k, v], [upstream]);
        var fused = F.scaled_dot_product_attention(q, k, v, keyMask, is_casual: causal);
        var fusedGrads = torch.autograd.grad([fused], [q, k, v], [upstream]);

        Assert.True(ours.allclose(fused, rtol: 1e-5, atol: 1e-5), $"output differs by {(ours - fused).abs().max().item<float>():E2}");
        for (int i = 0; i < 3; i++)
        {
            Assert.True(ourGrads[i].allclose(fusedGrads[i], rtol: 1e-4, atol: 1e-5),
                $"gradient {"qkv"[i]} differs by {(ourGrads[i] - fusedGrads[i]).abs().max().item<float>():E2}");
        }
    }

    [Fact]
    public void A_query_sees_no_future_key_when_causal_and_no_masked_key_when_masked()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var (q, k, v) = (randn(2, 2, 8, 4), randn(2, 2, 8, 4), randn(2, 2, 8, 4));
        var (k2, v2) = (k.clone(), v.clone());
        k2[.., .., 5..] = randn(2, 2, 3, 4); // keys and values from position 5 on change
        using var hundred = 100.ToScalar();
        v2[.., .., 5..] = randn(2, 2, 3, 4).mul(hundred);

        var causalBefore = SelfAttention.Attend(q, k, v, null, causal: true);
        var causalAfter = SelfAttention.Attend(q, k2, v2, null, causal: true);
        Assert.True(causalBefore[.., .., ..5].equal(causalAfter[.., .., ..5]).all().item<bool>(), "a query before position 5 saw a later key");
        Assert.False(causalBefore[.., .., 5..].allclose(causalAfter[.., .., 5..]), "queries from position 5 on should see the changed keys");

        using var eight = 8.ToScalar();
        using var five = 5.ToScalar();
        var keyMask = arange(eight).lt(five).view(1, 1, 1, 8).expand(2, 1, 1, 8);
        var maskedBefore = SelfAttention.Attend(q, k, v, keyMask, causal: false);
        var maskedAfter = SelfAttention.Attend(q, k2, v2, keyMask, causal: false);
        Assert.True(maskedBefore.equal(maskedAfter).all().item<bool>(), "a query saw a masked key");
    }
}

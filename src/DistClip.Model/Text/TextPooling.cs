using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model.Text;

/// <summary>The two ways a text tower reads its sequence: where it may look, and where it pools.</summary>
internal static class TextPooling
{
    /// <summary>[N, L] bool, true at real tokens (position &lt; length), false at padding.</summary>
    public static Tensor KeyMask(Tensor lengths, long contextLength)
    {
        using var length = contextLength.ToScalar();
        return arange(length, device: lengths.device).unsqueeze(0) < lengths.unsqueeze(1); // [1, L] < [N, 1] → [N, L]
    }

    /// <summary>
    /// Row i's features at position lengths[i] − 1, the end-of-text token. CLIP takes argmax(tokens)
    /// because its EOT has the largest id; ours shares an id with the start marker, so use lengths.
    /// </summary>
    /// <param name="x">[N, L, W]</param>
    /// <returns>[N, W]</returns>
    public static Tensor AtEndOfText(Tensor x, Tensor lengths)
    {
        var (n, w) = (x.shape[0], x.shape[2]);
        var index = lengths.sub(Scalars.One).view(n, 1, 1).expand(n, 1, w); // [N, 1, W]
        return x.gather(1, index).squeeze(1); // [N, W]
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model;

/// <summary>
/// Cuts a tower's autograd graph at chosen points of its forward pass, so that its backward can run
/// one segment at a time, from the top down: when a segment's backward ends, the gradients of its
/// parameters are complete and a distributed step can put them on the wire while the segments below
/// still compute (what DDP's bucket hooks do; TorchSharp 0.107 has no hooks).
/// <para>
/// A cut replaces the activation x by a leaf x' = x.detach() that requires grad. Backward of the
/// output stops at x', which collects dL/dx; the segment below then runs backward(x, dL/dx). The
/// forward values are unchanged and dL/dx is the same sum of the same terms, so every gradient
/// equals the uncut graph's bit for bit (ClipModelTests checks it).
/// </para>
/// </summary>
public sealed class BackwardCuts
{
    private readonly List<(Tensor Source, Tensor Leaf)> _cuts = [];

    /// <summary>Cuts made so far; the tower has this many plus one segments.</summary>
    public int Count => _cuts.Count;

    /// <summary>Called by a tower's forward at a segment boundary; returns the leaf the layers above compute from.</summary>
    internal Tensor Cut(Tensor x)
    {
        var leaf = x.detach().requires_grad_(true);
        _cuts.Add((x, leaf));
        return leaf;
    }

    /// <summary>
    /// Backward of <paramref name="output"/> with <paramref name="gradient"/>, then of each segment
    /// below it; after each segment, <paramref name="segmentDone"/>(k), k = 0 for the top segment and
    /// <see cref="Count"/> for the bottom one.
    /// </summary>
    public void Backward(Tensor output, Tensor gradient, Action<int> segmentDone)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(gradient);
        ArgumentNullException.ThrowIfNull(segmentDone);
        torch.autograd.backward([output], [gradient]);
        segmentDone(0);
        for (int i = _cuts.Count - 1; i >= 0; i--)
        {
            var (source, leaf) = _cuts[i];

            // No gradient reached the cut only if nothing above it used its input; the segment below then gets zeros.
            using var grad = leaf.grad ?? torch.zeros_like(leaf);
            torch.autograd.backward([source], [grad]);
            segmentDone(_cuts.Count - i);
        }
    }
}

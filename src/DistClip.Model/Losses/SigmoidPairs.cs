using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Model.Losses;

/// <summary>
/// SigLIP's pairwise sigmoid loss (Zhai et al., 2023) for one block of the global matrix, with its
/// gradient, in tiles: −log σ(z·(exp(t)·q·k + bias)) with z = 1 for a matching pair, −1 otherwise.
/// No row normalisation couples the blocks, so a rank can meet the other ranks' features one block
/// at a time as they pass around a ring.
/// </summary>
public static class SigmoidPairs
{
    /// <summary>Adds the block q × k (weight = 1/B, the paper's mean over images).</summary>
    /// <param name="q">[b, D] image features.</param>
    /// <param name="k">[c, D] text features.</param>
    /// <param name="diagonalOffset">Column of q's row 0 positive in this block, or null when the block holds no pairs.</param>
    /// <param name="qBest">Running best key of each q row: values [b] and global key indices [b] (Int64).</param>
    /// <param name="kBest">Running best query of each k row: values [c] and global query indices [c].</param>
    /// <param name="qGlobalOffset">Global index of q's first row.</param>
    /// <param name="kGlobalOffset">Global index of k's first row.</param>
    public static void Accumulate(
        Tensor q, Tensor k, long? diagonalOffset, Tensor scale, Tensor bias, double weight, int chunk, Tensor dq, Tensor dk,
        LossTotals totals, (Tensor Values, Tensor Indices) qBest, (Tensor Values, Tensor Indices) kBest, long qGlobalOffset, long kGlobalOffset)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(totals);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunk, 1);
        long b = q.shape[0];
        long c = k.shape[0];
        using var noGrad = no_grad();
        using var factor = weight.ToScalar();
        for (long r0 = 0; r0 < b; r0 += chunk)
        {
            using var rowScope = NewDisposeScope();
            long rows = Math.Min(chunk, b - r0);
            var qs = q.narrow(0, r0, rows) * scale; // [rows, D]
            for (long c0 = 0; c0 < c; c0 += chunk)
            {
                using var tileScope = NewDisposeScope();
                long cols = Math.Min(chunk, c - c0);
                var kc = k.narrow(0, c0, cols); // [cols, D]
                var logits = qs.matmul(kc.t()).add_(bias); // [rows, cols]
                Improve(qBest, r0, logits.max(1), kGlobalOffset + c0);
                Improve(kBest, c0, logits.max(0), qGlobalOffset + r0);

                // Every pair as a negative: −log σ(−x) = softplus(x), dL/dx = σ(x). A positive instead has
                // −log σ(x) = softplus(x) − x and dL/dx = σ(x) − 1.
                var loss = F.softplus(logits).sum(ScalarType.Float64);
                var g = logits.sigmoid(); // [rows, cols]
                if (diagonalOffset is long d)
                {
                    long offset = d + r0 - c0; // tile column of tile row 0's positive
                    loss.sub_(logits.diagonal(offset).sum(ScalarType.Float64));
                    g.diagonal(offset).sub_(Scalars.One);
                }

                g.mul_(factor); // dL/dlogits
                totals.LossSum.add_(loss);
                totals.BiasGradient.add_(g.sum(ScalarType.Float64));
                totals.ScaleGradient.add_((g * (logits - bias)).sum(ScalarType.Float64));
                dq.narrow(0, r0, rows).add_(g.matmul(kc).mul_(scale)); // [rows, D]
                dk.narrow(0, c0, cols).add_(g.t().matmul(qs)); // [cols, D]
            }
        }
    }

    /// <summary>
    /// Keeps, for each row, the larger of its best so far and this tile's (value, global index); on
    /// equal values the lower index, so the result is the first maximum whatever order tiles come in.
    /// </summary>
    private static void Improve((Tensor Values, Tensor Indices) best, long start, (Tensor Values, Tensor Indexes) tile, long indexOffset)
    {
        long length = tile.Values.shape[0];
        var values = best.Values.narrow(0, start, length);
        var indices = best.Indices.narrow(0, start, length);
        using var offset = indexOffset.ToScalar();
        var tileIndices = tile.Indexes.add(offset);
        var better = (tile.Values > values).logical_or_(tile.Values.eq(values).logical_and_(tileIndices < indices));
        values.copy_(where(better, tile.Values, values));
        indices.copy_(where(better, tileIndices, indices));
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model.Losses;

/// <summary>
/// CLIP's cross-entropy for a block of rows of the global logits matrix, with its gradient, in tiles:
/// the block is never held whole. Rows are queries q (images for image→text, texts for text→image),
/// columns every key k of the global batch; row i's positive is column <c>diagonalOffset + i</c>.
/// </summary>
/// <remarks>
/// Pass 1 runs over column chunks keeping each row's running max, Σ exp and argmax (a streaming
/// log-sum-exp); pass 2 recomputes each tile's logits and turns them into dL/dlogits = (softmax − 1 at
/// the positive)·weight, which is pushed onto q and k at once. Peak memory is a few [chunk, chunk]
/// tiles whatever the batch; with a single column chunk the logits of pass 1 are reused.
/// </remarks>
public static class SoftmaxRows
{
    /// <summary>
    /// Adds this block's loss and gradients (<paramref name="weight"/> is the loss's factor, 1/(2B)
    /// for CLIP's mean of two directions over B rows).
    /// </summary>
    /// <param name="q">[b, D] this block's query rows.</param>
    /// <param name="k">[B, D] every key.</param>
    /// <param name="diagonalOffset">Global index of q's first row (its positive key).</param>
    /// <param name="scale">Scalar exp(t): logits = scale·q·kᵀ.</param>
    /// <param name="dq">[b, D] receives dL/dq (added).</param>
    /// <param name="dk">[B, D] receives dL/dk (added).</param>
    /// <param name="correct">Int64 scalar: rows whose largest logit (first, on ties) is their positive are added.</param>
    public static void Accumulate(
        Tensor q, Tensor k, long diagonalOffset, Tensor scale, double weight, int chunk, Tensor dq, Tensor dk, LossTotals totals, Tensor correct)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(totals);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunk, 1);
        long b = q.shape[0];
        long n = k.shape[0];
        if (diagonalOffset < 0 || diagonalOffset + b > n)
        {
            throw new ArgumentOutOfRangeException(nameof(diagonalOffset), $"rows [{diagonalOffset}, {diagonalOffset + b}) are not all keys of [0, {n})");
        }

        using var noGrad = no_grad();
        using var factor = weight.ToScalar();
        for (long r0 = 0; r0 < b; r0 += chunk)
        {
            using var rowScope = NewDisposeScope();
            long rows = Math.Min(chunk, b - r0);
            long first = diagonalOffset + r0; // row i's positive is column first + i
            var qs = q.narrow(0, r0, rows) * scale; // [rows, D]: logits = qs·kᵀ
            var max = full(rows, Scalars.NegativeInfinity, dtype: q.dtype, device: q.device); // [rows]
            var sum = zeros(rows, dtype: q.dtype, device: q.device); // [rows]: Σ exp(logit − max)
            var arg = zeros(rows, dtype: ScalarType.Int64, device: q.device); // [rows]
            Tensor? whole = null; // the only tile's logits, when one chunk covers every column

            for (long c0 = 0; c0 < n; c0 += chunk)
            {
                using var tileScope = NewDisposeScope();
                long cols = Math.Min(chunk, n - c0);
                var logits = qs.matmul(k.narrow(0, c0, cols).t()); // [rows, cols]
                var (tileMax, tileArg) = logits.max(1); // [rows]
                var next = max.maximum(tileMax);
                sum.mul_((max - next).exp_()).add_((logits - next.unsqueeze(1)).exp_().sum(1));
                // Strictly greater: on ties the earlier column stays, as argmax over the whole row does.
                using var column = c0.ToScalar();
                arg.copy_(where(tileMax > max, tileArg.add(column), arg));
                max.copy_(next);
                if (cols == n)
                {
                    whole = logits.MoveToOuterDisposeScope();
                }
            }

            var lse = max + sum.log(); // [rows]
            var positive = (qs * k.narrow(0, first, rows)).sum(1); // [rows]
            totals.LossSum.add_((lse - positive).sum(ScalarType.Float64));
            using var from = first.ToScalar();
            using var to = (first + rows).ToScalar();
            correct.add_(arg.eq(arange(from, to, dtype: ScalarType.Int64, device: q.device)).sum());

            var lseColumn = lse.unsqueeze(1); // [rows, 1]
            for (long c0 = 0; c0 < n; c0 += chunk)
            {
                using var tileScope = NewDisposeScope();
                long cols = Math.Min(chunk, n - c0);
                var kc = k.narrow(0, c0, cols); // [cols, D]
                var logits = whole ?? qs.matmul(kc.t()); // [rows, cols]
                var g = (logits - lseColumn).exp_(); // softmax [rows, cols]
                g.diagonal(first - c0).sub_(Scalars.One); // the positives' (p − 1); empty when not in this tile
                g.mul_(factor); // dL/dlogits
                totals.ScaleGradient.add_((g * logits).sum(ScalarType.Float64));
                dq.narrow(0, r0, rows).add_(g.matmul(kc).mul_(scale)); // [rows, D]
                dk.narrow(0, c0, cols).add_(g.t().matmul(qs)); // [cols, D]
            }
        }
    }
}

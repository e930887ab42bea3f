using DistClip.Config;
using DistClip.Model;
using DistClip.Model.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training.Steps;

/// <summary>
/// SigLIP's sigmoid loss as ring blocks: each rank's text features travel once around the ring of
/// workers and each rank meets them one [b_r × b_j] block at a time (<see cref="SigmoidPairs"/>); the
/// gradient for the travelling texts rides along with them and arrives home after the last hop. No
/// rank ever holds another rank's features beyond the block in hand, nor more than a tile of logits.
/// </summary>
/// <remarks>
/// <code>
/// payload of rank j's texts  [b_j, 2D + 2] = text features | dL/d(text) so far | best image (value, index)
/// hop h = 0 .. N−1   rank r holds rank (r − h)'s payload: block I_r × T_(r−h), then shift it right
/// last hop           [b_j, D + 2] (gradient and best image only) goes home to rank j
/// </code>
/// N − 1 hops carry features and N hops gradients; each rank sends 2·b·D floats per hop. The
/// gradient of the travelling texts is summed in hop order; only its owner uses it, and the towers'
/// gradients are summed by the step afterwards, so replicas stay bit-identical.
/// </remarks>
public sealed class SigLipLossStage(IStepCollectives collectives, int chunk) : LossStage(collectives, chunk)
{
    protected override LossOutput Compute(Tensor images, Tensor texts, Tensor logitScale, Tensor? logitBias, int[] rows, CancellationToken ct)
    {
        if (logitBias is null)
        {
            throw new ArgumentNullException(nameof(logitBias), "the sigmoid loss needs the model's logit bias (ClipConfig.WithLogitBias)");
        }

        int n = Collectives.WorldSize;
        int rank = Collectives.Rank;
        long b = images.shape[0];
        long d = images.shape[1];
        int total = rows.Sum();
        long offset = Offset(rows, rank);
        var scale = logitScale.exp();
        double weight = 1.0 / total; // SigLIP's −(1/B) Σ over all B² pairs
        using var totals = new LossTotals(images.device);
        var imageGradients = zeros(b, d, dtype: images.dtype, device: images.device); // [b_r, D]
        var imageBest = (full(b, Scalars.NegativeInfinity, dtype: images.dtype, device: images.device), zeros(b, dtype: ScalarType.Int64, device: images.device));

        var payload = cat([texts, zeros(b, d + 2, dtype: texts.dtype, device: texts.device)], 1); // [b_r, 2D + 2]
        payload.select(1, 2 * d).fill_(Scalars.NegativeInfinity);
        for (int hop = 0; hop < n; hop++)
        {
            int owner = Mod(rank - hop, n);
            long c = payload.shape[0];
            var textBest = (payload.select(1, 2 * d), payload.select(1, (2 * d) + 1).to(ScalarType.Int64)); // [c] each
            if (b > 0 && c > 0)
            {
                SigmoidPairs.Accumulate(images, payload.narrow(1, 0, d), owner == rank ? 0 : null, scale, logitBias, weight, Chunk,
                    imageGradients, payload.narrow(1, d, d), totals, imageBest, textBest, offset, Offset(rows, owner));
                payload.select(1, (2 * d) + 1).copy_(textBest.Item2);
            }

            if (hop < n - 1)
            {
                var next = payload;
                payload = Communicate(() => Collectives.ShiftRows(next, rows[Mod(rank - hop - 1, n)], ct));
            }
        }

        // The payload in hand is rank r + 1's: send its gradient and best images home.
        var tail = payload.narrow(1, d, d + 2).contiguous(); // [c, D + 2]
        var home = Communicate(() => Collectives.ShiftRows(tail, rows[rank], ct)); // [b_r, D + 2]: this rank's texts
        using var first = offset.ToScalar();
        using var end = (offset + b).ToScalar();
        var positions = arange(first, end, dtype: ScalarType.Int64, device: images.device);
        var imageToText = imageBest.Item2.eq(positions).sum();
        var textToImage = home.select(1, d + 1).to(ScalarType.Int64).eq(positions).sum();
        var (lossSum, i2t, t2i) = SumStatistics(totals.LossSum, imageToText, textToImage, ct);
        return new LossOutput(
            Loss: total == 0 ? double.NaN : lossSum * weight,
            GlobalBatch: total,
            ImageGradient: imageGradients,
            TextGradient: home.narrow(1, 0, d).contiguous(),
            ScaleGradient: totals.ScaleGradient.to(logitScale.dtype).reshape(logitScale.shape),
            BiasGradient: totals.BiasGradient.to(logitBias.dtype).reshape(logitBias.shape),
            ImageToTextAccuracy: total == 0 ? 0 : i2t / total,
            TextToImageAccuracy: total == 0 ? 0 : t2i / total,
            CommunicationSeconds: 0);
    }

    private static int Mod(int value, int n) => ((value % n) + n) % n;
}

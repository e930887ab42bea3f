using DistClip.Model.Losses;
using static TorchSharp.torch;

namespace DistClip.Training.Steps;

/// <summary>
/// CLIP's softmax loss as row blocks: rank r forms its b_r image rows against all B texts and its b_r
/// text rows against all B images, tile by tile (<see cref="SoftmaxRows"/>). Every entry of the B × B
/// matrix enters the loss on exactly one rank per direction; no rank holds more than a tile of it.
/// </summary>
/// <remarks>
/// <code>
/// all-gather   [b_r, 2D] → [B, 2D]         (image | text features of every rank)
/// row blocks   dL/d(all features) [B, 2D]   (this rank's rows' contribution to every feature)
/// reduce-scatter [B, 2D] → [b_r, 2D]        (the sum over ranks, for this rank's own features)
/// </code>
/// The temperature's gradient is a sum over rows, so each rank returns its part; the step sums the
/// parts with the other gradients.
/// </remarks>
public sealed class SoftmaxLossStage(IStepCollectives collectives, int chunk) : LossStage(collectives, chunk)
{
    protected override LossOutput Compute(Tensor images, Tensor texts, Tensor logitScale, Tensor? logitBias, int[] rows, CancellationToken ct)
    {
        long b = images.shape[0];
        long d = images.shape[1];
        int total = rows.Sum();
        long offset = Offset(rows, Collectives.Rank);
        var all = Communicate(() => Collectives.AllGatherRows(cat([images, texts], 1), rows, ct)); // [B, 2D]
        var allImages = all.narrow(1, 0, d); // [B, D]
        var allTexts = all.narrow(1, d, d); // [B, D]
        var gradients = zeros(total, 2 * d, dtype: all.dtype, device: all.device); // [B, 2D]: dL/d(image | text)
        var imageGradients = gradients.narrow(1, 0, d);
        var textGradients = gradients.narrow(1, d, d);
        var scale = logitScale.exp();
        double weight = 1.0 / (2.0 * total); // the mean of two cross-entropies over B rows each
        using var totals = new LossTotals(images.device);
        var imageToText = zeros(1, dtype: ScalarType.Int64, device: images.device);
        var textToImage = zeros(1, dtype: ScalarType.Int64, device: images.device);
        if (b > 0)
        {
            // Image→text rows [b_r, B], then text→image rows [b_r, B]; the positive of row i is column offset + i.
            SoftmaxRows.Accumulate(allImages.narrow(0, offset, b), allTexts, offset, scale, weight, Chunk,
                imageGradients.narrow(0, offset, b), textGradients, totals, imageToText);
            SoftmaxRows.Accumulate(allTexts.narrow(0, offset, b), allImages, offset, scale, weight, Chunk,
                textGradients.narrow(0, offset, b), imageGradients, totals, textToImage);
        }

        var own = Communicate(() => Collectives.ReduceScatterRows(gradients, rows, ct)); // [b_r, 2D]
        var (lossSum, i2t, t2i) = SumStatistics(totals.LossSum, imageToText, textToImage, ct);
        return new LossOutput(
            Loss: total == 0 ? double.NaN : lossSum * weight,
            GlobalBatch: total,
            ImageGradient: own.narrow(1, 0, d).contiguous(),
            TextGradient: own.narrow(1, d, d).contiguous(),
            ScaleGradient: totals.ScaleGradient.to(logitScale.dtype).reshape(logitScale.shape),
            BiasGradient: null,
            ImageToTextAccuracy: total == 0 ? 0 : i2t / total,
            TextToImageAccuracy: total == 0 ? 0 : t2i / total,
            CommunicationSeconds: 0);
    }
}

using DistClip.Data;
using DistClip.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training.Evaluation;

/// <summary>Recall@K for image→text and text→image retrieval, as fractions.</summary>
public sealed record RetrievalResult(
    double ImageToTextR1, double ImageToTextR5, double ImageToTextR10,
    double TextToImageR1, double TextToImageR5, double TextToImageR10,
    int Pairs);

/// <summary>
/// Retrieval over N image–caption pairs: the i-th caption is the only correct match of the i-th
/// image (open_clip's convention). On templated captions many texts are identical, so recall there
/// is a lower bound on what a human would call a correct match.
/// </summary>
public static class Retrieval
{
    public static RetrievalResult Evaluate(ClipModel model, IEnumerable<Batch> batches, Device device)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        bool wasTraining = model.training;
        model.eval();
        var imageRows = new List<Tensor>();
        var textRows = new List<Tensor>();
        try
        {
            foreach (var batch in batches)
            {
                var images = BatchTensors.Images(batch, device);
                var (tokens, lengths) = BatchTensors.Text(batch, device);
                imageRows.Add(Features.Normalize(model.EncodeImage(images)));
                textRows.Add(Features.Normalize(model.EncodeText(tokens, lengths)));
            }
        }
        finally
        {
            model.train(wasTraining);
        }

        if (imageRows.Count == 0)
        {
            return new RetrievalResult(0, 0, 0, 0, 0, 0, 0);
        }

        var similarity = torch.cat(imageRows).matmul(torch.cat(textRows).t()); // [N images, N texts]
        int n = (int)similarity.shape[0];
        var i2t = RecallAt(similarity, [1, 5, 10]);
        var t2i = RecallAt(similarity.t(), [1, 5, 10]);
        return new RetrievalResult(i2t[0], i2t[1], i2t[2], t2i[0], t2i[1], t2i[2], n);
    }

    /// <summary>For each row, whether the diagonal entry ranks within the top K of that row.</summary>
    internal static double[] RecallAt(Tensor similarity, int[] ks)
    {
        long n = similarity.shape[0];
        // Rank of the correct item = how many entries in its row score strictly higher.
        var diagonal = similarity.diagonal().unsqueeze(1);            // [N, 1]
        var rank = similarity.gt(diagonal).sum(1);                     // [N]
        return ks.Select(k =>
        {
            using var bound = k.ToScalar();
            return rank.lt(bound).to(ScalarType.Float32).sum().item<float>() / (double)n;
        }).ToArray();
    }
}

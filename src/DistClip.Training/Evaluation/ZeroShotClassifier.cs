using DistClip.Data;
using DistClip.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training.Evaluation;

/// <summary>Top-1 and top-5 accuracy of zero-shot classification, as fractions.</summary>
public sealed record ZeroShotResult(double Top1, double Top5, int Samples);

/// <summary>
/// CLIP's zero-shot classifier: one embedding per class name by <see cref="PromptEnsemble"/>, and an
/// image is assigned the class whose embedding is most similar.
/// </summary>
public sealed class ZeroShotClassifier : IDisposable
{
    private readonly Tensor _weights; // [K, D], unit rows

    private ZeroShotClassifier(Tensor weights, IReadOnlyList<string> classNames)
    {
        _weights = weights;
        ClassNames = classNames;
    }

    public IReadOnlyList<string> ClassNames { get; }

    public static ZeroShotClassifier Build(ClipModel model, ITextTokenizer tokenizer, IReadOnlyList<string> classNames,
        IReadOnlyList<string> templates, Device device)
    {
        bool wasTraining = model.training;
        model.eval();
        try
        {
            return new ZeroShotClassifier(PromptEnsemble.LabelEmbeddings(model, tokenizer, classNames, templates, device), classNames);
        }
        finally
        {
            model.train(wasTraining);
        }
    }

    /// <summary>Class scores for a batch of images: [N, K] cosine similarities.</summary>
    public Tensor Scores(ClipModel model, Tensor images)
    {
        var features = Features.Normalize(model.EncodeImage(images)); // [N, D]
        return features.matmul(_weights.t());
    }

    /// <summary>Top-1/top-5 accuracy over labelled batches (labels index <see cref="ClassNames"/>).</summary>
    public ZeroShotResult Evaluate(ClipModel model, IEnumerable<Batch> batches, Device device)
    {
        int k = Math.Min(5, ClassNames.Count);
        long top1 = 0, top5 = 0, seen = 0;
        using var noGrad = torch.no_grad();
        bool wasTraining = model.training;
        model.eval();
        try
        {
            foreach (var batch in batches)
            {
                using var scope = torch.NewDisposeScope();
                var images = BatchTensors.Images(batch, device);
                var labels = torch.tensor(batch.Labels.Select(l => (long)l).ToArray()).to(device); // [N]
                var topk = Scores(model, images).topk(k, 1).indexes;                             // [N, k]
                var hits = topk.eq(labels.unsqueeze(1));                                          // [N, k]
                top1 += hits[.., 0].sum().item<long>();
                top5 += hits.any(1).sum().item<long>();
                seen += batch.Count;
            }
        }
        finally
        {
            model.train(wasTraining);
        }

        return seen == 0 ? new ZeroShotResult(0, 0, 0) : new ZeroShotResult((double)top1 / seen, (double)top5 / seen, (int)seen);
    }

    public void Dispose() => _weights.Dispose();
}

using DistClip.Data;
using DistClip.Model;
using static TorchSharp.torch;

namespace DistClip.Training.Evaluation;

/// <summary>Zero-shot accuracy and retrieval recall of one model on one labelled held-out set.</summary>
public sealed record EvaluationResult(ZeroShotResult ZeroShot, RetrievalResult? Retrieval);

/// <summary>Runs the evaluations a training run reports, on the same data every time.</summary>
public sealed class Evaluator(IImageTextDataset dataset, ITextTokenizer tokenizer, ImageSpec spec, int zeroShotSamples, int retrievalSamples, int batchSize = 500)
{
    public EvaluationResult Evaluate(ClipModel model, Device device)
    {
        var classes = dataset.ClassNames
            ?? throw new InvalidOperationException($"{dataset.Name} has no class names; zero-shot evaluation needs a labelled dataset");
        int context = model.Config.Text.ContextLength;
        int limit = zeroShotSamples > 0 ? Math.Min(zeroShotSamples, dataset.Count) : dataset.Count;
        using var classifier = ZeroShotClassifier.Build(model, tokenizer, classes, PromptTemplates.Default, device);
        var zeroShot = classifier.Evaluate(model, ClipDataLoader.Sequential(dataset, spec, tokenizer, context, batchSize, limit), device);
        RetrievalResult? retrieval = null;
        if (retrievalSamples > 0)
        {
            int pairs = Math.Min(retrievalSamples, dataset.Count);
            retrieval = Retrieval.Evaluate(model, ClipDataLoader.Sequential(dataset, spec, tokenizer, context, batchSize, pairs), device);
        }

        return new EvaluationResult(zeroShot, retrieval);
    }
}

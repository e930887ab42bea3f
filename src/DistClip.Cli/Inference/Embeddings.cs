using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Cli.Inference;

/// <summary>Unit-length image and text embeddings of a <see cref="LoadedModel"/>, returned on the CPU.</summary>
internal static class Embeddings
{
    private const int TextBatch = 256;

    /// <param name="pixels">count × C × H × W floats, preprocessed with the model's <see cref="LoadedModel.Spec"/>.</param>
    /// <returns>[count, D]</returns>
    public static Tensor Images(LoadedModel model, ReadOnlySpan<float> pixels, int count)
    {
        var vision = model.Model.Config.Vision;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var images = torch.tensor(pixels.ToArray(), [count, vision.Channels, vision.ImageSize, vision.ImageSize]).to(model.Device);
        return Features.Normalize(model.Model.EncodeImage(images)).cpu().MoveToOuterDisposeScope();
    }

    /// <returns>[texts, D]</returns>
    public static Tensor Texts(LoadedModel model, IReadOnlyList<string> texts)
    {
        int context = model.Model.Config.Text.ContextLength;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var rows = new List<Tensor>();
        for (int first = 0; first < texts.Count; first += TextBatch)
        {
            int n = Math.Min(TextBatch, texts.Count - first);
            var tokens = new long[n * context];
            var lengths = new long[n];
            for (int i = 0; i < n; i++)
            {
                lengths[i] = model.Tokenizer.Encode(texts[first + i], context, tokens.AsSpan(i * context, context));
            }

            var encoded = model.Model.EncodeText(torch.tensor(tokens, [n, context]).to(model.Device), torch.tensor(lengths).to(model.Device));
            rows.Add(Features.Normalize(encoded).cpu());
        }

        return torch.cat(rows).MoveToOuterDisposeScope();
    }

    /// <summary>One unit vector per label: CLIP's prompt ensembling, the training evaluator's rule (<see cref="PromptEnsemble"/>).</summary>
    /// <returns>[labels, D]</returns>
    public static Tensor Labels(LoadedModel model, IReadOnlyList<string> labels, IReadOnlyList<string> templates)
    {
        using var scope = torch.NewDisposeScope();
        return PromptEnsemble.LabelEmbeddings(model.Model, model.Tokenizer, labels, templates, model.Device).cpu().MoveToOuterDisposeScope();
    }
}

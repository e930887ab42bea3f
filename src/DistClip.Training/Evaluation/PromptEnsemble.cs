using DistClip.Data;
using DistClip.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training.Evaluation;

/// <summary>
/// CLIP's prompt ensembling (the paper, section 3.1.4): each label goes through every template, the
/// unit-length text embeddings are averaged and the mean renormalised, giving one unit vector per
/// label. The training evaluator's <see cref="ZeroShotClassifier"/> and the CLI's <c>classify</c> use
/// this one rule, so a checkpoint scores the same in both.
/// </summary>
public static class PromptEnsemble
{
    /// <summary>
    /// One unit row per label, on <paramref name="device"/>, under no_grad; the caller sets the model's
    /// mode (eval for dropout-free embeddings). Labels are lower-cased before they fill a template.
    /// </summary>
    /// <returns>[labels, D]</returns>
    public static Tensor LabelEmbeddings(ClipModel model, ITextTokenizer tokenizer, IReadOnlyList<string> labels,
        IReadOnlyList<string> templates, Device device)
    {
        if (labels.Count == 0 || templates.Count == 0)
        {
            throw new ArgumentException("prompt ensembling needs at least one label and one template");
        }

        int context = model.Config.Text.ContextLength;
        var tokens = new long[templates.Count * context];
        var lengths = new long[templates.Count];
        var rows = new List<Tensor>(labels.Count);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        foreach (string name in labels)
        {
            string label = name.ToLowerInvariant();
            for (int t = 0; t < templates.Count; t++)
            {
                lengths[t] = tokenizer.Encode(PromptTemplates.Apply(templates[t], label), context, tokens.AsSpan(t * context, context));
            }

            var text = model.EncodeText(
                torch.tensor(tokens, [templates.Count, context]).to(device),
                torch.tensor(lengths).to(device));              // [T, D]
            var mean = Features.Normalize(text).mean([0]);      // [D]
            rows.Add(mean / mean.norm());
        }

        return torch.stack(rows).MoveToOuterDisposeScope();     // [K, D]
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model.Import;

/// <summary>How strictly <see cref="PretrainedImport"/> matches.</summary>
public sealed record PretrainedImportOptions
{
    public static PretrainedImportOptions Strict { get; } = new();

    /// <summary>
    /// False (default): any missing, unexpected or mis-shaped name refuses the import and leaves the
    /// model untouched. True: copy what matches and return the report; the caller must show it.
    /// </summary>
    public bool AllowPartial { get; init; }
}

/// <summary>
/// Loads published CLIP weights (OpenAI's, open_clip's) into a <see cref="ClipModel"/> by their
/// parameter names, which ours follow: <c>visual.*</c>, <c>token_embedding.weight</c>,
/// <c>positional_embedding</c>, <c>transformer.resblocks.N.*</c>, <c>ln_final.*</c>,
/// <c>text_projection</c>, <c>logit_scale</c>. Values are converted to the model's dtype and
/// device (OpenAI ships float16). Nothing is skipped silently: see <see cref="ImportReport"/>.
/// </summary>
public static class PretrainedImport
{
    // Scalars OpenAI's TorchScript models carry beside the weights (clip.build_model deletes them).
    private static readonly string[] OpenAIMetadata = ["input_resolution", "context_length", "vocab_size"];
    private const string BatchCounter = "num_batches_tracked";

    /// <summary>Reads <paramref name="path"/> (PyTorch state dict or safetensors) and imports it.</summary>
    /// <exception cref="PretrainedImportException">
    /// The file cannot be read, or (unless <see cref="PretrainedImportOptions.AllowPartial"/>) it does
    /// not match the model; the message lists every mismatched name and the model is unchanged.
    /// </exception>
    public static ImportReport Load(ClipModel model, string path, PretrainedImportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var file = StateDictFile.Read(path);
        return Load(model, file, options);
    }

    /// <summary>Imports tensors already read (e.g. after <see cref="PretrainedConfig.Infer"/> looked at their shapes).</summary>
    public static ImportReport Load(ClipModel model, StateDictFile file, PretrainedImportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(file);
        options ??= PretrainedImportOptions.Strict;
        var report = Match(model, file);
        if (!report.IsComplete && !options.AllowPartial)
        {
            throw new PretrainedImportException(report);
        }

        var targets = model.state_dict();
        using (no_grad())
        {
            foreach (string name in report.Loaded)
            {
                // copy_ converts dtype (float16 → float32) and device in one step, in place, so the
                // model's Parameter objects (and any optimizer holding them) stay the same.
                targets[name].copy_(file.Tensors[name]);
            }
        }

        return report with { Applied = true };
    }

    /// <summary>Compares names and shapes only; copies nothing.</summary>
    public static ImportReport Match(ClipModel model, StateDictFile file)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(file);
        var targets = model.state_dict();
        var loaded = new List<string>();
        var unexpected = new List<NamedShape>();
        var mismatched = new List<ShapeMismatch>();
        var ignored = new List<IgnoredEntry>();
        var notes = new List<string>(file.Notes);
        var conversions = new Dictionary<(ScalarType From, ScalarType To), int>();

        foreach (var (name, tensor) in file.Tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (targets.TryGetValue(name, out var target))
            {
                if (!tensor.shape.SequenceEqual(target.shape))
                {
                    mismatched.Add(new ShapeMismatch(name, tensor.shape, target.shape));
                    continue;
                }

                loaded.Add(name);
                if (tensor.dtype != target.dtype)
                {
                    conversions[(tensor.dtype, target.dtype)] = conversions.GetValueOrDefault((tensor.dtype, target.dtype)) + 1;
                }
            }
            else if (IgnoredInFile(name) is { } reason)
            {
                ignored.Add(new IgnoredEntry(name, reason));
            }
            else
            {
                unexpected.Add(new NamedShape(name, tensor.shape));
            }
        }

        ignored.AddRange(file.NonTensorEntries.Select(n => new IgnoredEntry(n, "not a tensor")));
        var missing = new List<NamedShape>();
        foreach (var (name, target) in targets.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (file.Tensors.ContainsKey(name))
            {
                continue;
            }

            if (name.EndsWith("." + BatchCounter, StringComparison.Ordinal))
            {
                ignored.Add(new IgnoredEntry(name, "BatchNorm step counter, not in the file; kept (unused with a fixed momentum)"));
            }
            else if (name == "logit_bias")
            {
                // Weights trained with the softmax loss have no bias: the sigmoid loss starts it at its init.
                ignored.Add(new IgnoredEntry(name, "the sigmoid loss's bias, not in the file; kept at its initial value"));
            }
            else
            {
                missing.Add(new NamedShape(name, target.shape));
            }
        }

        notes.AddRange(conversions.Select(c => $"{c.Value} tensors converted from {c.Key.From} to {c.Key.To}"));
        return new ImportReport(file.Path, file.Format, loaded, missing, unexpected, mismatched, ignored, notes);
    }

    private static string? IgnoredInFile(string name)
    {
        if (OpenAIMetadata.Contains(name))
        {
            return "OpenAI model metadata, not a weight; the model config carries it";
        }

        if (name == "attn_mask" || name.EndsWith(".attn_mask", StringComparison.Ordinal))
        {
            return "causal attention mask; the model builds its own";
        }

        return name.EndsWith("." + BatchCounter, StringComparison.Ordinal)
            ? "BatchNorm step counter; this model does not keep one"
            : null;
    }
}

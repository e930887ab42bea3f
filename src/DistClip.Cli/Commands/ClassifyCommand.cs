using System.Globalization;
using DistClip.Cli.CommandLine;
using DistClip.Cli.Inference;
using DistClip.Data;
using TorchSharp;

namespace DistClip.Cli.Commands;

/// <summary>
/// Zero-shot classification of image files into labels chosen now: each label goes through the
/// prompt templates (ensembled as in training's evaluation) and each image gets a softmax over
/// exp(t)·cosine, CLIP's own probabilities.
/// </summary>
internal sealed class ClassifyCommand : ICommand
{
    private const int ImageBatch = 64;

    public string Name => "classify";

    public string Summary => "zero-shot: label image files with labels you choose";

    public string Usage => "--checkpoint DIR --labels \"a,b,...\" [options] IMAGE...";

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        .. ModelSourceOptions.Specs,
        new("labels", "\"A,B,...\"", "comma-separated labels (repeatable)", Repeatable: true),
        new("labels-file", "FILE", "labels one per line (blank lines and lines starting with # are skipped)"),
        new("template", "TEXT", "a prompt template with {} for the label (repeatable; default: the training templates)", Repeatable: true),
        new("top-k", "K", "labels shown per image (default 5)"),
        new("json", null, "print JSON instead of a table"),
    ];

    public int Run(ParsedArguments args, CliContext context, CancellationToken ct)
    {
        var labels = ReadLabels(args);
        var templates = args.Values("template") is { Count: > 0 } given ? given : PromptTemplates.Default;
        foreach (string template in templates)
        {
            if (!template.Contains(PromptTemplates.Placeholder, StringComparison.Ordinal))
            {
                throw new UsageException($"classify: --template \"{template}\" has no {PromptTemplates.Placeholder} for the label");
            }
        }

        int topK = Math.Min(args.Int("top-k", 5, min: 1), labels.Count);
        if (args.Positionals.Count == 0)
        {
            throw new UsageException("classify: give at least one IMAGE file");
        }

        var source = ModelSourceOptions.From(args);
        using var model = ModelLoader.Load(source, context.Logger, ct);
        using var weights = Embeddings.Labels(model, labels, templates); // [K, D]
        var results = new List<ClassifiedImage>();
        foreach (var chunk in args.Positionals.Chunk(ImageBatch))
        {
            ct.ThrowIfCancellationRequested();
            results.AddRange(ClassifyBatch(model, weights, labels, chunk, topK));
        }

        if (args.Flag("json"))
        {
            context.WriteJson(new { Model = model.Identity.Describe(), Labels = labels, Images = results });
        }
        else
        {
            foreach (var result in results)
            {
                context.Out.WriteLine(result.Image);
                if (result.Error is not null)
                {
                    context.Out.WriteLine($"  error: {result.Error}");
                    continue;
                }

                foreach (var p in result.Predictions!)
                {
                    context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {p.Probability,7:P1}  {p.Label}"));
                }
            }
        }

        int failed = results.Count(r => r.Error is not null);
        if (failed > 0)
        {
            context.Error.WriteLine($"classify: {failed} of {results.Count} images could not be read");
        }

        return failed == 0 ? ExitCodes.Success : ExitCodes.Failed;
    }

    private static IEnumerable<ClassifiedImage> ClassifyBatch(LoadedModel model, TorchSharp.torch.Tensor weights, IReadOnlyList<string> labels, string[] paths, int topK)
    {
        var decoder = new ImageDecoder();
        int pixelCount = model.Spec.PixelCount;
        var pixels = new float[paths.Length * pixelCount];
        var errors = new string?[paths.Length];
        var rows = new List<int>();
        for (int i = 0; i < paths.Length; i++)
        {
            errors[i] = Decode(decoder, paths[i], model.Spec, pixels.AsSpan(rows.Count * pixelCount, pixelCount));
            if (errors[i] is null)
            {
                rows.Add(i);
            }
        }

        var predictions = new Prediction[paths.Length][];
        if (rows.Count > 0)
        {
            using var scope = torch.NewDisposeScope();
            var features = Embeddings.Images(model, pixels.AsSpan(0, rows.Count * pixelCount), rows.Count); // [N, D]
            using var scale = model.LogitScale.ToScalar();
            var probabilities = features.matmul(weights.t()).mul(scale).softmax(1); // [N, K]
            var (values, indexes) = probabilities.topk(topK, 1);
            float[] p = values.data<float>().ToArray();
            long[] k = indexes.data<long>().ToArray();
            for (int r = 0; r < rows.Count; r++)
            {
                predictions[rows[r]] = [.. Enumerable.Range(0, topK).Select(j => new Prediction(labels[(int)k[r * topK + j]], Math.Round(p[r * topK + j], 6)))];
            }
        }

        return paths.Select((path, i) => new ClassifiedImage(path, errors[i] is null ? predictions[i] : null, errors[i]));
    }

    /// <returns>Null when decoded, else why not.</returns>
    private static string? Decode(ImageDecoder decoder, string path, ImageSpec spec, Span<float> pixels)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }

        return decoder.TryDecode(bytes, spec, pixels, out var reason, out string detail) ? null : $"{reason}: {detail}";
    }

    private static List<string> ReadLabels(ParsedArguments args)
    {
        var labels = args.Values("labels").SelectMany(v => v.Split(',')).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        if (args.Value("labels-file") is { } file)
        {
            if (!File.Exists(file))
            {
                throw new UsageException($"classify: --labels-file {Path.GetFullPath(file)} does not exist");
            }

            labels.AddRange(File.ReadLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')));
        }

        if (labels.Count == 0)
        {
            throw new UsageException("classify: give the labels to choose from with --labels \"a,b\" or --labels-file FILE");
        }

        string? repeated = labels.GroupBy(l => l, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1)?.Key;
        return repeated is null ? labels : throw new UsageException($"classify: label '{repeated}' is given more than once");
    }

    internal sealed record Prediction(string Label, double Probability);

    internal sealed record ClassifiedImage(string Image, IReadOnlyList<Prediction>? Predictions, string? Error);
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using DistClip.Cli.CommandLine;
using DistClip.Cli.Inference;
using DistClip.Config;
using DistClip.Data;
using DistClip.Training;
using DistClip.Training.Evaluation;

namespace DistClip.Cli.Commands;

/// <summary>
/// Zero-shot accuracy and retrieval recall of a checkpoint, computed by the training run's own
/// <see cref="Evaluator"/> on the same held-out data with the same sample counts (taken from the
/// checkpoint's run config unless overridden), so the numbers equal those in its summary.json.
/// </summary>
internal sealed class EvalCommand : ICommand
{
    public string Name => "eval";

    public string Summary => "zero-shot top-1/top-5 and retrieval recall, as the training run reports them";

    public string Usage => "--checkpoint DIR [--dataset fashion-mnist|wds:PATTERN|csv:FILE] [options]";

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        .. ModelSourceOptions.Specs,
        new("dataset", "SPEC", "fashion-mnist or synthetic:N (their test splits; default fashion-mnist), or wds:PATTERN / csv:FILE for retrieval only"),
        new("samples", "N", "held-out samples for zero-shot accuracy, 0 = all (default: the run's eval_samples)"),
        new("retrieval-samples", "N", "pairs for retrieval recall, 0 = off (default: the run's retrieval_samples, else 1000)"),
        new("json", null, "print JSON (summary.json's names) instead of text"),
    ];

    public int Run(ParsedArguments args, CliContext context, CancellationToken ct)
    {
        string dataset = args.Value("dataset") ?? "fashion-mnist";
        var source = ModelSourceOptions.From(args);
        using var model = ModelLoader.Load(source, context.Logger, ct);
        // The same evaluator as training, with whichever tokenizer the model came with (GPT-2 for
        // DistClip runs, OpenAI's CLIP BPE for published weights).
        var tokenizer = model.Tokenizer;

        int samples = args.Int("samples", RunSetting(model, "eval_samples", 0), min: 0);
        int pairs = args.Int("retrieval-samples", RunSetting(model, "retrieval_samples", 1000), min: 0);
        IImageTextDataset heldOut;
        try
        {
            heldOut = DatasetSource.OpenEvaluation(dataset) ?? DatasetSource.OpenTrain(dataset, context.Logger);
        }
        catch (Exception e) when (e is DataException or ArgumentException)
        {
            throw new RefusedException($"dataset '{dataset}': {e.Message}", e);
        }

        ct.ThrowIfCancellationRequested();
        ZeroShotResult? zeroShot = null;
        RetrievalResult? retrieval;
        if (heldOut.ClassNames is not null)
        {
            var result = new Evaluator(heldOut, tokenizer, model.Spec, samples, pairs).Evaluate(model.Model, model.Device);
            (zeroShot, retrieval) = (result.ZeroShot, result.Retrieval);
        }
        else if (pairs > 0)
        {
            // Captioned but unlabelled data: retrieval only, over the first N pairs as the evaluator would.
            var batches = ClipDataLoader.Sequential(heldOut, model.Spec, tokenizer, model.Model.Config.Text.ContextLength, 500, Math.Min(pairs, heldOut.Count));
            retrieval = Retrieval.Evaluate(model.Model, batches, model.Device);
        }
        else
        {
            throw new UsageException($"eval: {heldOut.Name} has no classes for zero-shot accuracy and --retrieval-samples is 0: nothing to measure");
        }

        Print(context, args.Flag("json"), model, heldOut.Name, zeroShot, retrieval);
        return ExitCodes.Success;
    }

    private static void Print(CliContext context, bool json, LoadedModel model, string dataset, ZeroShotResult? zeroShot, RetrievalResult? retrieval)
    {
        if (json)
        {
            context.WriteJson(new EvalReport(
                model.Identity.Describe(),
                dataset,
                zeroShot?.Top1,
                zeroShot?.Top5,
                zeroShot?.Samples,
                retrieval is null ? null : new RecallPair(retrieval.ImageToTextR1, retrieval.TextToImageR1),
                retrieval is null ? null : new RecallPair(retrieval.ImageToTextR5, retrieval.TextToImageR5),
                retrieval is null ? null : new RecallPair(retrieval.ImageToTextR10, retrieval.TextToImageR10),
                retrieval?.Pairs));
            return;
        }

        var o = context.Out;
        o.WriteLine($"model: {model.Identity.Describe()}");
        o.WriteLine($"dataset: {dataset}");
        if (zeroShot is not null)
        {
            o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"zero-shot top-1 {zeroShot.Top1:P2}  top-5 {zeroShot.Top5:P2}  ({zeroShot.Samples} images)"));
        }

        if (retrieval is not null)
        {
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"retrieval image->text R@1 {retrieval.ImageToTextR1:P2}  R@5 {retrieval.ImageToTextR5:P2}  R@10 {retrieval.ImageToTextR10:P2}  ({retrieval.Pairs} pairs)"));
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"retrieval text->image R@1 {retrieval.TextToImageR1:P2}  R@5 {retrieval.TextToImageR5:P2}  R@10 {retrieval.TextToImageR10:P2}"));
        }
    }

    /// <summary>An evaluation setting of the run that trained the checkpoint (state.json config), so numbers are comparable.</summary>
    private static int RunSetting(LoadedModel model, string name, int fallback) =>
        model.TrainingConfig is { } config && config.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number
            ? value.GetInt32()
            : fallback;

    /// <summary>--json output, with summary.json's names for the same numbers.</summary>
    internal sealed record EvalReport(
        string Model,
        string Dataset,
        double? ZeroShotTop1,
        double? ZeroShotTop5,
        int? ZeroShotSamples,
        [property: JsonPropertyName("recall_at_1")] RecallPair? RecallAt1,
        [property: JsonPropertyName("recall_at_5")] RecallPair? RecallAt5,
        [property: JsonPropertyName("recall_at_10")] RecallPair? RecallAt10,
        int? RetrievalPairs);
}

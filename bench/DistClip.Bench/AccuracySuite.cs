using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using DistClip.Config;
using DistClip.Data;

namespace DistClip.Bench;

/// <summary>
/// <c>versus-pytorch-accuracy</c>: time to accuracy against the PyTorch reference on the same data.
/// Exports the first N global batches in DistClip's order (dataset indices, DistClip's tokens) and the
/// zero-shot prompts, then trains clip-tiny with the issue's recipe (constant lr, no warm-up, no
/// clipping) three ways, one after the other: the PyTorch reference (2 DDP processes) from its own
/// seed, DistClip (`coordinator launch`, 2 workers) from its own seed, and DistClip from the
/// reference's initial weights (<c>--init</c>). Zero-shot top-1 on the 10,000 test images every
/// <c>--eval-every</c> steps; prints both curves and the training seconds each took to reach 80%.
/// </summary>
public static class AccuracySuite
{
    /// <summary>What the three runs share: the recipe of issue 14, part 6.</summary>
    public sealed record Recipe(int Steps, int EvalEvery, int GlobalBatch, int Seed, double LearningRate, string Model)
    {
        public static Recipe From(BenchArgs args) =>
            new(args.StepsGiven ? args.Steps : 300, args.EvalEvery, args.Batch, args.SeedGiven ? args.Seed : 42, 5e-4, args.Model);
    }

    public sealed record CurvePoint(
        [property: JsonPropertyName("step")] long Step,
        [property: JsonPropertyName("loss")] double Loss,
        [property: JsonPropertyName("zero_shot_top1")] double? ZeroShotTop1,
        [property: JsonPropertyName("train_seconds")] double TrainSeconds);

    public sealed record AccuracyRun(string Name, IReadOnlyList<CurvePoint> Curve, IReadOnlyList<double> Losses, double? SecondsTo80);

    public static async Task<IReadOnlyList<AccuracyRun>> RunAsync(BenchArgs args, TextWriter output, CancellationToken ct)
    {
        var recipe = Recipe.From(args);
        string dir = Directory.CreateTempSubdirectory("distclip-accuracy-").FullName;
        var config = ClipConfig.Load(recipe.Model);
        output.WriteLine($"exporting {recipe.Steps} global batches of {recipe.GlobalBatch} (seed {recipe.Seed}) and the zero-shot prompts to {dir}");
        Export(Path.Combine(dir, "data"), recipe, config.Text.ContextLength);

        // --rows picks among pytorch, own, torch-init (the last needs the first's initial weights), and
        // pytorch-seed2: the reference from the next seed's initial weights on the same batches, which
        // measures how far two draws of one framework's initialisation differ.
        var rows = args.Rows ?? ["pytorch", "own", "torch-init"];
        string[] known = ["pytorch", "pytorch-seed2", "own", "torch-init"];
        if (rows.FirstOrDefault(r => !known.Contains(r)) is { } unknown)
        {
            throw new ArgumentException($"--rows: unknown row '{unknown}' (known: {string.Join(", ", known)})");
        }

        string init = Path.Combine(dir, "pytorch-init.pt");
        var runs = new List<AccuracyRun>();
        if (rows.Contains("pytorch") || rows.Contains("torch-init"))
        {
            var reference = await RunReferenceAsync("PyTorch (own init)", recipe, recipe.Seed, Path.Combine(dir, "data"), init, output, ct);
            if (rows.Contains("pytorch"))
            {
                runs.Add(reference);
            }
        }

        if (rows.Contains("pytorch-seed2"))
        {
            runs.Add(await RunReferenceAsync($"PyTorch (init seed {recipe.Seed + 1})", recipe, recipe.Seed + 1, Path.Combine(dir, "data"),
                Path.Combine(dir, "pytorch-seed2-init.pt"), output, ct));
        }

        if (rows.Contains("own"))
        {
            runs.Add(await LaunchAsync("DistClip (own init)", recipe, Path.Combine(dir, "own"), null, output, ct));
        }

        if (rows.Contains("torch-init"))
        {
            runs.Add(await LaunchAsync("DistClip (PyTorch's init)", recipe, Path.Combine(dir, "torch-init"), init, output, ct));
        }

        Print(runs, recipe, output);
        return runs;
    }

    /// <summary>
    /// Writes meta.json, indices.i32 [steps, B], tokens.i64 [steps, B, L], lengths.i64 [steps, B],
    /// prompt_tokens.i64 [classes, templates, L] and prompt_lengths.i64 [classes, templates], little-endian,
    /// exactly as a run with this seed samples, captions and tokenises them (the sampler's global batch is
    /// the same at any world size: ranks take contiguous slices of it).
    /// </summary>
    public static void Export(string dir, Recipe recipe, int context)
    {
        Directory.CreateDirectory(dir);
        var train = FashionMnistDataset.Open(FashionMnistSplit.Train);
        var tokenizer = ClipTokenizer.CreateR50k();
        var sampler = new GlobalBatchSampler(train.Count, recipe.GlobalBatch, 1, recipe.Seed);
        using (var indices = new BinaryWriter(File.Create(Path.Combine(dir, "indices.i32"))))
        using (var tokens = new BinaryWriter(File.Create(Path.Combine(dir, "tokens.i64"))))
        using (var lengths = new BinaryWriter(File.Create(Path.Combine(dir, "lengths.i64"))))
        {
            var row = new long[context];
            var cursor = SamplerCursor.Start;
            for (int step = 0; step < recipe.Steps; step++, cursor = sampler.Next(cursor))
            {
                foreach (int index in sampler.GlobalBatch(cursor))
                {
                    Array.Clear(row);
                    int length = tokenizer.Encode(train.Caption(index), context, row);
                    indices.Write(index);
                    foreach (long id in row)
                    {
                        tokens.Write(id);
                    }

                    lengths.Write((long)length);
                }
            }
        }

        var templates = PromptTemplates.Default;
        using (var tokens = new BinaryWriter(File.Create(Path.Combine(dir, "prompt_tokens.i64"))))
        using (var lengths = new BinaryWriter(File.Create(Path.Combine(dir, "prompt_lengths.i64"))))
        {
            var row = new long[context];
            foreach (string name in FashionMnistDataset.Classes)
            {
                foreach (string template in templates)
                {
                    Array.Clear(row);
                    lengths.Write((long)tokenizer.Encode(PromptTemplates.Apply(template, name.ToLowerInvariant()), context, row));
                    foreach (long id in row)
                    {
                        tokens.Write(id);
                    }
                }
            }
        }

        var spec = ImageSpec.FashionMnist;
        File.WriteAllText(Path.Combine(dir, "meta.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["steps"] = recipe.Steps,
            ["global_batch"] = recipe.GlobalBatch,
            ["context_length"] = context,
            ["seed"] = recipe.Seed,
            ["mean"] = (double)spec.Mean[0],
            ["std"] = (double)spec.Std[0],
            ["classes"] = FashionMnistDataset.Classes,
            ["templates"] = templates,
            ["dataset_directory"] = FashionMnistDataset.ResolveDirectory(),
        }));
    }

    /// <param name="seed">Draws the initial weights; the batches are the exported ones whatever it is.</param>
    private static async Task<AccuracyRun> RunReferenceAsync(
        string name, Recipe recipe, int seed, string data, string initOut, TextWriter output, CancellationToken ct)
    {
        output.WriteLine($"{name}: PyTorch reference, 2 DDP processes x 1 thread ...");
        string last = await VersusPyTorchSuite.RunReferenceScriptAsync(
        [
            "--mode", "ddp", "--workers", "2", "--model", recipe.Model, "--batch", Inv(recipe.GlobalBatch), "--steps", Inv(recipe.Steps),
            "--data", data, "--eval-every", Inv(recipe.EvalEvery), "--seed", Inv(seed), "--init-out", initOut,
            "--lr", Inv(recipe.LearningRate), "--min-lr", Inv(recipe.LearningRate), "--lr-warmup", "0", "--grad-clip", "0",
        ], "(2 x 1, on exported batches)", TimeSpan.FromMinutes(60), ct);
        var report = JsonSerializer.Deserialize<ReferenceCurve>(last) ?? throw new InvalidDataException("the PyTorch reference printed no report");
        return new AccuracyRun(name, report.Curve, report.Losses, SecondsTo(report.Curve, 0.8));
    }

    private static async Task<AccuracyRun> LaunchAsync(string name, Recipe recipe, string dir, string? init, TextWriter output, CancellationToken ct)
    {
        output.WriteLine($"{name}, coordinator launch, 2 workers x 1 thread ...");
        string[] arguments =
        [
            "launch", "--model", recipe.Model, "--workers", "2", "--threads", "1", "--global-batch", Inv(recipe.GlobalBatch),
            "--steps", Inv(recipe.Steps), "--seed", Inv(recipe.Seed), "--eval-every", Inv(recipe.EvalEvery), "--retrieval-samples", "0",
            "--lr", Inv(recipe.LearningRate), "--min-lr", Inv(recipe.LearningRate), "--warmup-steps", "0", "--grad-clip", "0",
            "--checkpoint-every", "0", "--log-every", "1",
            "--run-dir", Path.Combine(dir, "run"), "--checkpoint-dir", Path.Combine(dir, "checkpoints"),
            .. init is null ? [] : new[] { "--init", init },
        ];
        var run = await CoordinatorRun.RunAsync(arguments, TimeSpan.FromMinutes(60), ct);
        if (run.ExitCode != 0)
        {
            throw new InvalidOperationException($"coordinator launch ({name}) exited with {run.ExitCode}:\n{run.Stdout}\n{run.Stderr}");
        }

        var summary = RunSummary.Read(Path.Combine(dir, "run", "summary.json"));

        // samples_per_second of a history point is the mean since the start, so steps × batch / it is the training time to there.
        var curve = summary.History.Where(p => p.ZeroShotTop1 is not null)
            .Select(p => new CurvePoint(p.Step, p.Loss, p.ZeroShotTop1, p.SamplesPerSecond > 0 ? p.Step * recipe.GlobalBatch / p.SamplesPerSecond : double.NaN))
            .ToList();
        var losses = summary.History.OrderBy(p => p.Step).Select(p => p.Loss).ToList();
        return new AccuracyRun(name, curve, losses, SecondsTo(curve, 0.8));
    }

    private static double? SecondsTo(IReadOnlyList<CurvePoint> curve, double top1) =>
        curve.FirstOrDefault(p => p.ZeroShotTop1 >= top1)?.TrainSeconds;

    private static void Print(IReadOnlyList<AccuracyRun> runs, Recipe recipe, TextWriter output)
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{recipe.Model}, global batch {recipe.GlobalBatch}, constant lr {recipe.LearningRate}, no warm-up, no clipping, AdamW (0.9, 0.98, 1e-6, wd 0.2), seed {recipe.Seed}, the same batches on every side"));
        var steps = runs.SelectMany(r => r.Curve).Select(p => p.Step).Distinct().Order().ToList();
        output.WriteLine($"{"zero-shot top-1 at step",-28} " + string.Join(" ", steps.Select(s => $"{s,7}")) + $" {"s to 80%",9}");
        foreach (var run in runs)
        {
            output.WriteLine($"{run.Name,-28} " + string.Join(" ", steps.Select(s => run.Curve.FirstOrDefault(p => p.Step == s)?.ZeroShotTop1 is double v
                ? string.Create(CultureInfo.InvariantCulture, $"{v,7:F3}") : $"{"-",7}")) +
                (run.SecondsTo80 is double t ? string.Create(CultureInfo.InvariantCulture, $" {t,9:F1}") : $" {"never",9}"));
        }

        int[] early = [1, 2, 3, 5, 10, 20, 30, 50];
        output.WriteLine($"{"loss at step",-28} " + string.Join(" ", early.Select(s => $"{s,7}")));
        foreach (var run in runs)
        {
            output.WriteLine($"{run.Name,-28} " + string.Join(" ", early.Select(s => s <= run.Losses.Count
                ? string.Create(CultureInfo.InvariantCulture, $"{run.Losses[s - 1],7:F3}") : $"{"-",7}")));
        }
    }

    private static string Inv(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Inv(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private sealed record ReferenceCurve(
        [property: JsonPropertyName("curve")] List<CurvePoint> Curve,
        [property: JsonPropertyName("losses")] List<double> Losses);
}

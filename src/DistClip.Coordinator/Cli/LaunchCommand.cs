using System.Globalization;
using DistClip.Model;
using DistClip.Training;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Cli;

/// <summary><c>coordinator launch</c>: parses the run's settings, trains, evaluates, writes summary.json.</summary>
internal static class LaunchCommand
{
    public static int Run(string[] args, ILoggerFactory loggers, CancellationToken ct)
    {
        TrainOptions options;
        string runDir;
        try
        {
            (options, runDir) = Parse(args);
            options.Validate(worldSize: 1);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("Run 'coordinator launch --help' for the settings.");
            return ExitCodes.BadConfiguration;
        }

        if (options.Threads == 0)
        {
            // One process here: it may use every core.
            options = options with { Threads = Environment.ProcessorCount };
        }

        var logger = loggers.CreateLogger("DistClip.Coordinator");
        using var progress = new ProgressReporter(options.Steps, options.LogEvery, Console.Out, interactive: !Console.IsOutputRedirected);
        RunSummary summary;
        try
        {
            summary = SingleProcessRun.Run(options, logger, progress, ct);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.BadConfiguration;
        }
        catch (Data.DataException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.BadConfiguration;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            Console.Error.WriteLine("interrupted");
            return ExitCodes.Interrupted;
        }

        progress.Finish();
        string summaryPath = Path.Combine(runDir, "summary.json");
        summary.Write(summaryPath);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"trained {summary.Steps} steps of {summary.Model} at {summary.SamplesPerSecond:F0} samples/s; final loss {summary.FinalLoss:F3}"));
        if (summary.ZeroShotTop1 is { } top1)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"zero-shot top-1 {top1:P1}, top-5 {summary.ZeroShotTop5:P1} on {summary.ZeroShotSamples} held-out images"));
        }

        if (summary.RecallAt1 is { } r1)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"retrieval recall@1 image->text {r1.ImageToText:P1}, text->image {r1.TextToImage:P1}"));
        }

        Console.WriteLine($"summary: {summaryPath}");
        return ExitCodes.Success;
    }

    internal static (TrainOptions Options, string RunDir) Parse(string[] args)
    {
        var options = new TrainOptions();
        string? runDir = null;
        var overrides = new List<(TrainOptionTable.Setting Setting, string Value)>();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new ConfigException(arg, $"unexpected argument '{arg}'");
            }

            string name = arg[2..];
            string? value = null;
            int eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            else if (i + 1 < args.Length)
            {
                value = args[++i];
            }

            if (value is null)
            {
                throw new ConfigException(name, "needs a value");
            }

            switch (name)
            {
                case "config":
                    options = TrainOptionTable.ApplyJson(options, value);
                    break;
                case "run-dir":
                    runDir = value;
                    break;
                default:
                    var setting = TrainOptionTable.Find(name)
                        ?? throw new ConfigException(name, "unknown option; run 'coordinator launch --help'");
                    overrides.Add((setting, value));
                    break;
            }
        }

        // The command line overrides the JSON config wherever the two appear on the line.
        foreach (var (setting, value) in overrides)
        {
            options = setting.Apply(options, value);
        }

        runDir ??= Path.Combine("runs", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
        return (options, runDir);
    }

    public static void PrintHelp(TextWriter output)
    {
        output.WriteLine("usage: coordinator launch [--config FILE] [--run-dir DIR] [--SETTING VALUE ...]");
        output.WriteLine();
        output.WriteLine("Trains a CLIP model and reports zero-shot accuracy; writes DIR/summary.json (default runs/<time>).");
        output.WriteLine("Settings (JSON config keys use snake_case; the command line overrides the config):");
        foreach (var s in TrainOptionTable.Settings)
        {
            output.WriteLine($"  --{s.Name,-18} {s.Help}");
        }
    }
}

internal static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int BadConfiguration = 2;
    public const int Interrupted = 130;
}

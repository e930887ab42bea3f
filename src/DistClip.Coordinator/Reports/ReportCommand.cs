using DistClip.Config;
using DistClip.Coordinator.Cli;

namespace DistClip.Coordinator.Reports;

/// <summary><c>coordinator report RUN_DIR</c>: (re)draws the training plots of a finished run from its summary.json.</summary>
internal static class ReportCommand
{
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        if (args.Length != 1 || args[0].StartsWith('-'))
        {
            error.WriteLine("usage: coordinator report RUN_DIR   (writes the training plots beside RUN_DIR/summary.json)");
            return args is ["--help" or "-h"] ? ExitCodes.Success : ExitCodes.BadConfiguration;
        }

        string summaryPath = Path.Combine(args[0], "summary.json");
        if (!File.Exists(summaryPath))
        {
            error.WriteLine($"error: {summaryPath} does not exist; a run writes it when it finishes");
            return ExitCodes.BadConfiguration;
        }

        RunSummary summary;
        try
        {
            summary = RunSummary.Read(summaryPath);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException)
        {
            error.WriteLine($"error: {summaryPath} is not a run summary: {e.Message}");
            return ExitCodes.BadConfiguration;
        }

        var files = TrainingReport.Write(summary, args[0]);
        foreach (string file in files)
        {
            output.WriteLine(file);
        }

        if (files.Count == 0)
        {
            error.WriteLine($"warning: {summaryPath} has no history to plot");
        }

        return ExitCodes.Success;
    }
}

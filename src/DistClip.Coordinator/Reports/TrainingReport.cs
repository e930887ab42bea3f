using DistClip.Config;
using ScottPlot;

namespace DistClip.Coordinator.Reports;

/// <summary>
/// The training report: one PNG per curve of <see cref="RunSummary.History"/> (loss, learning rate,
/// samples/s, zero-shot top-1), written beside <c>summary.json</c>. Rendered headless (SkiaSharp);
/// each file is written beside and renamed, so a reader never sees half an image.
/// </summary>
public static class TrainingReport
{
    public const int Width = 800;
    public const int Height = 450;

    /// <summary>The plots: file name, title, axis label, the value of a history point (null: not measured there), and whether it is a fraction.</summary>
    public static readonly IReadOnlyList<(string File, string Title, string Axis, Func<HistoryPoint, double?> Value, bool Fraction)> Plots =
    [
        ("loss.png", "Contrastive loss", "loss", p => p.Loss, false),
        ("learning-rate.png", "Learning rate", "learning rate", p => p.LearningRate, false),
        ("samples-per-second.png", "Throughput (mean since the start)", "samples/s", p => p.SamplesPerSecond, false),
        ("zero-shot-top1.png", "Zero-shot top-1 accuracy, held-out images", "top-1", p => p.ZeroShotTop1, true),
    ];

    /// <summary>Writes every plot that has at least one finite point; returns the paths written.</summary>
    public static IReadOnlyList<string> Write(RunSummary summary, string directory)
    {
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        foreach (var (file, title, axis, value, fraction) in Plots)
        {
            var points = summary.History
                .Select(p => (p.Step, Value: value(p)))
                .Where(p => p.Value is { } v && double.IsFinite(v))
                .OrderBy(p => p.Step)
                .ToList();
            if (points.Count == 0)
            {
                continue; // e.g. zero-shot accuracy of a dataset without labels
            }

            string path = Path.Combine(directory, file);
            Render(title, axis, fraction, summary, [.. points.Select(p => (double)p.Step)], [.. points.Select(p => p.Value!.Value)], path);
            written.Add(path);
        }

        return written;
    }

    /// <summary>
    /// At the end of a run: writes the report and names the files on <paramref name="output"/>. A
    /// plot that cannot be drawn (no native graphics library) is a warning, never a failed run.
    /// </summary>
    public static void WriteAfterRun(RunSummary summary, string runDirectory, TextWriter output)
    {
        try
        {
            var files = Write(summary, runDirectory);
            if (files.Count > 0)
            {
                output.WriteLine($"plots: {string.Join(", ", files)}");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or TypeInitializationException or DllNotFoundException)
        {
            output.WriteLine($"warning: no training plots ({e.Message}); 'coordinator report {runDirectory}' retries");
        }
    }

    private static void Render(string title, string axis, bool fraction, RunSummary summary, double[] steps, double[] values, string path)
    {
        var plot = new Plot();
        var line = plot.Add.Scatter(steps, values);
        line.LineWidth = 2;
        line.MarkerSize = steps.Length == 1 ? 8 : 4;
        plot.Title(title);
        plot.XLabel($"step ({summary.Model} on {summary.Dataset}, {summary.WorldSize} worker(s), global batch {summary.GlobalBatch})");
        plot.YLabel(axis);
        if (fraction)
        {
            plot.Axes.SetLimitsY(0, 1);
        }

        if (steps.Length == 1)
        {
            // One point (an evaluation at the end only): show it inside the frame, not on its edge.
            plot.Axes.SetLimitsX(0, Math.Max(1, steps[0] * 1.05));
        }

        string tmp = Path.Combine(Path.GetDirectoryName(path)!, "." + Path.GetFileNameWithoutExtension(path) + ".tmp.png");
        plot.SavePng(tmp, Width, Height);
        File.Move(tmp, path, overwrite: true);
    }
}

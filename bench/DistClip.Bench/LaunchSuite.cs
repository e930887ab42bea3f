using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DistClip.Config;
using DistClip.Training;

namespace DistClip.Bench;

/// <summary>One configuration of the launch suite, measured by a real <c>coordinator launch</c>.</summary>
public sealed record LaunchResult(
    string Name, int Workers, int ThreadsPerWorker, int GlobalBatch, int MeasuredSteps, double SamplesPerSecond,
    Dictionary<string, double> PhaseSeconds);

/// <summary>
/// The <c>launch</c> suite: the same model, global batch and steps trained by N workers × T threads
/// through the real coordinator and worker processes; samples/s and seconds per phase after warm-up
/// (rank 0's step times, as summary.json reports them).
/// </summary>
public static class LaunchSuite
{
    public static async Task<List<LaunchResult>> RunAsync(BenchArgs args, TextWriter output, CancellationToken ct)
    {
        var shapes = new[] { (Name: "2 workers x 1 thread", Workers: 2, Threads: 1), (Name: "1 worker x 2 threads", Workers: 1, Threads: 2) };
        var results = new List<LaunchResult>();
        string scratch = Directory.CreateTempSubdirectory("distclip-bench-launch-").FullName;
        try
        {
            foreach (var shape in shapes)
            {
                var summary = await LaunchAsync(args, shape.Workers, shape.Threads, Path.Combine(scratch, shape.Workers.ToString(CultureInfo.InvariantCulture)), ct);
                results.Add(new LaunchResult(shape.Name, shape.Workers, shape.Threads, args.Batch, args.Steps,
                    summary.SteadySamplesPerSecond ?? double.NaN, summary.PhaseSeconds ?? []));
            }
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }

        Print(results, output);
        return results;
    }

    private static async Task<RunSummary> LaunchAsync(BenchArgs args, int workers, int threads, string dir, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(CoordinatorRun.CoordinatorDll);
        foreach (string a in LaunchArguments(args, workers, threads, dir))
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"coordinator launch ({workers} workers) exited with {process.ExitCode}:\n{await stdout}\n{await stderr}");
        }

        return RunSummary.Read(Path.Combine(dir, "run", "summary.json"));
    }

    /// <summary>
    /// The <c>coordinator launch</c> arguments of one measured run (the versus-pytorch suite trains
    /// with the same): <paramref name="args"/>' steps after <see cref="WarmupSteps"/> untimed ones,
    /// no checkpoints, a token evaluation; run and checkpoint folders under <paramref name="dir"/>.
    /// </summary>
    internal static string[] LaunchArguments(BenchArgs args, int workers, int threads, string dir) =>
    [
        "launch",
        "--model", args.Model, "--workers", Inv(workers), "--threads", Inv(threads), "--global-batch", Inv(args.Batch),
        "--steps", Inv(args.Steps + WarmupSteps), "--checkpoint-every", "0", "--eval-samples", "100", "--retrieval-samples", "0",
        "--run-dir", Path.Combine(dir, "run"), "--checkpoint-dir", Path.Combine(dir, "checkpoints"), "--log-every", "1000",
    ];

    /// <summary>The session times steps after its first 3 (summary.json's steady figures); they come on top of the measured ones.</summary>
    internal const int WarmupSteps = 3;

    private static void Print(List<LaunchResult> results, TextWriter output)
    {
        var names = results.Count > 0 ? results[0].PhaseSeconds.Keys.ToList() : [];
        output.WriteLine($"{"shape",-22} {"samples/s",10} " + string.Join(" ", names.Select(n => $"{n + " s",12}")));
        foreach (var r in results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Name,-22} {r.SamplesPerSecond,10:F1} ") +
                string.Join(" ", names.Select(n => string.Create(CultureInfo.InvariantCulture, $"{r.PhaseSeconds.GetValueOrDefault(n),12:F3}"))));
        }

        if (results.Count == 2)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ratio (2 workers x 1 thread) / (1 worker x 2 threads): {results[0].SamplesPerSecond / results[1].SamplesPerSecond:F3}"));
        }
    }

    private static string Inv(int value) => value.ToString(CultureInfo.InvariantCulture);
}

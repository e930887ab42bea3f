using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using DistClip.Config;
using DistClip.Model;
using DistClip.Training.Steps;

namespace DistClip.Bench;

/// <summary>
/// One measured run of one side: samples/s and mean seconds per phase after warm-up (rank 0's), and
/// for DistClip every rank's.
/// </summary>
public sealed record VersusResult(
    string Shape, string Framework, int Round, int Workers, int ThreadsPerWorker, int GlobalBatch, int MeasuredSteps,
    double SamplesPerSecond, Dictionary<string, double> PhaseSeconds, Dictionary<string, double>[]? PhaseSecondsByRank = null,
    Dictionary<string, double>[]? WaitSecondsByRank = null);

/// <summary>DistClip's samples/s over PyTorch's for one shape in one round (above 1: DistClip is faster).</summary>
public sealed record VersusRatio(string Shape, int Round, double DistClipOverPyTorch);

/// <summary>What the suite measured, and what it measured the reference with.</summary>
public sealed record VersusReport(string Torch, string Blas, double BlasGflops, long Parameters, List<VersusResult> Results, List<VersusRatio> Ratios);

/// <summary>
/// The <c>versus-pytorch</c> suite: the same model, global batch, steps and warm-up trained by
/// DistClip (a real <c>coordinator launch</c>) and by our PyTorch reference
/// (<c>bench/pytorch/clip_reference.py</c>, Debian's python3-torch on OpenBLAS), interleaved in one
/// run so that both see the same machine: for each round, each shape, DistClip then PyTorch.
/// Shapes: 2 workers × 1 thread against DDP over gloo with 2 processes × 1 thread, and 1 worker ×
/// 2 threads against one process with 2 threads. Before the first measurement the suite checks that
/// the reference has every parameter of <see cref="ClipModel"/> by name and shape.
/// </summary>
public static class VersusPyTorchSuite
{
    public const string DistClip = "DistClip";
    public const string PyTorch = "PyTorch";

    /// <summary>Debian's interpreter, where python3-torch lives (a pyenv or venv python3 first on PATH has no torch).</summary>
    private const string Python = "/usr/bin/python3";

    private static readonly (string Name, int Workers, int Threads)[] Shapes =
        [("2 workers x 1 thread", 2, 1), ("1 worker x 2 threads", 1, 2)];

    public static async Task<VersusReport> RunAsync(BenchArgs args, TextWriter output, CancellationToken ct)
    {
        await EnsureDependenciesAsync(ct);
        var config = ClipConfig.Load(args.Model);
        var limit = TimeSpan.FromMinutes(args.RowMinutes);
        var results = new List<VersusResult>();
        ReferenceReport? first = null;
        string scratch = Directory.CreateTempSubdirectory("distclip-bench-versus-").FullName;
        try
        {
            for (int round = 1; round <= args.Rounds; round++)
            {
                foreach (var shape in Shapes)
                {
                    string dir = Path.Combine(scratch, $"round{round}-w{shape.Workers}");
                    var summary = await LaunchAsync(args, shape.Workers, shape.Threads, dir, limit, ct);
                    results.Add(Report(new VersusResult(shape.Name, DistClip, round, shape.Workers, shape.Threads, args.Batch, args.Steps,
                        summary.SteadySamplesPerSecond ?? double.NaN, summary.PhaseSeconds ?? [], summary.PhaseSecondsByRank, summary.WaitSecondsByRank), output));

                    var reference = await RunReferenceAsync(args, shape.Workers, shape.Threads, limit, ct);
                    if (first is null)
                    {
                        CheckSameModel(config, reference);
                        first = reference;
                    }

                    results.Add(Report(new VersusResult(shape.Name, PyTorch, round, shape.Workers, shape.Threads, reference.GlobalBatch, reference.Steps,
                        reference.SamplesPerSecond, reference.PhaseSeconds), output));
                }
            }
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }

        var ratios = results.Where(r => r.Framework == DistClip)
            .Select(d => (d, p: results.Single(p => p.Framework == PyTorch && p.Shape == d.Shape && p.Round == d.Round)))
            .Select(x => new VersusRatio(x.d.Shape, x.d.Round, x.d.SamplesPerSecond / x.p.SamplesPerSecond))
            .ToList();
        var report = new VersusReport(first!.Torch, first.Blas.Library ?? "?", first.Blas.Gflops, first.Parameters, results, ratios);
        Print(report, args, output);
        return report;
    }

    /// <summary>scripts/ensure-bench-deps.sh: installs python3-torch and OpenBLAS as root, or says which apt-get line to run.</summary>
    private static async Task EnsureDependenciesAsync(CancellationToken ct)
    {
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(CoordinatorRun.RepositoryRoot, "scripts", "ensure-bench-deps.sh"));
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not run scripts/ensure-bench-deps.sh");
        string stderr = await process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"scripts/ensure-bench-deps.sh exited with {process.ExitCode}: {stderr.Trim()}");
        }
    }

    private static async Task<RunSummary> LaunchAsync(BenchArgs args, int workers, int threads, string dir, TimeSpan limit, CancellationToken ct)
    {
        var run = await CoordinatorRun.RunAsync(LaunchSuite.LaunchArguments(args, workers, threads, dir), limit, ct);
        if (run.ExitCode != 0)
        {
            string why = run.TimedOut ? $"ran past {limit.TotalMinutes} minutes" : run.StoppedForMemory ? "was stopped: memory ran low" : $"exited with {run.ExitCode}";
            throw new InvalidOperationException($"coordinator launch ({workers} x {threads}) {why}:\n{run.Stdout}\n{run.Stderr}");
        }

        return RunSummary.Read(Path.Combine(dir, "run", "summary.json"));
    }

    /// <summary>Runs the reference once (it sets its own threads and LD_LIBRARY_PATH) and reads the JSON line it prints last.</summary>
    private static async Task<ReferenceReport> RunReferenceAsync(BenchArgs args, int workers, int threads, TimeSpan limit, CancellationToken ct)
    {
        string last = await RunReferenceScriptAsync(
        [
            .. workers > 1 ? ["--mode", "ddp", "--workers", Inv(workers)] : new[] { "--mode", "single", "--threads", Inv(threads) },
            "--model", args.Model, "--batch", Inv(args.Batch), "--steps", Inv(args.Steps), "--warmup", Inv(LaunchSuite.WarmupSteps),
        ], $"({workers} x {threads})", limit, ct);
        return JsonSerializer.Deserialize<ReferenceReport>(last) ?? throw new InvalidDataException("the PyTorch reference printed no report");
    }

    /// <summary>
    /// Runs <c>bench/pytorch/clip_reference.py</c> with <paramref name="arguments"/> under Debian's python3,
    /// killing it (and its DDP children) past <paramref name="limit"/>; returns the JSON line it printed last.
    /// </summary>
    /// <exception cref="InvalidOperationException">It failed or printed no JSON; the message holds its output.</exception>
    internal static async Task<string> RunReferenceScriptAsync(IEnumerable<string> arguments, string what, TimeSpan limit, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(Python) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(CoordinatorRun.RepositoryRoot, "bench", "pytorch", "clip_reference.py"));
        foreach (string a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {Python}");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await process.WaitForExitAsync(ct).WaitAsync(limit, ct);
        }
        finally
        {
            // Timed out or cancelled: leave no DDP process behind.
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        string last = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "";
        if (process.ExitCode != 0 || !last.StartsWith('{'))
        {
            throw new InvalidOperationException($"the PyTorch reference {what} exited with {process.ExitCode}:\n{await stdout}\n{await stderr}");
        }

        return last;
    }

    /// <summary>Throws unless the reference has exactly DistClip's parameters: the same names, each with the same shape.</summary>
    private static void CheckSameModel(ClipConfig config, ReferenceReport reference)
    {
        using var model = new ClipModel(config);
        var ours = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        var differences = ours.Keys.Union(reference.ParameterShapes.Keys).Order(StringComparer.Ordinal)
            .Where(name => !(ours.TryGetValue(name, out var a) && reference.ParameterShapes.TryGetValue(name, out var b) && a.SequenceEqual(b)))
            .Select(name => $"{name}: DistClip {Shape(ours.GetValueOrDefault(name))}, PyTorch {Shape(reference.ParameterShapes.GetValueOrDefault(name))}")
            .ToList();
        if (differences.Count > 0)
        {
            throw new InvalidOperationException($"the PyTorch reference is not {config.Name}; {differences.Count} parameter(s) differ:\n  " + string.Join("\n  ", differences.Take(10)));
        }

        static string Shape(long[]? shape) => shape is null ? "absent" : $"[{string.Join(", ", shape)}]";
    }

    private static VersusResult Report(VersusResult result, TextWriter output)
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"round {result.Round}, {result.Shape}, {result.Framework}: {result.SamplesPerSecond:F1} samples/s"));
        return result;
    }

    private static void Print(VersusReport report, BenchArgs args, TextWriter output)
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{args.Model} ({report.Parameters:N0} parameters, same names and shapes on both sides), global batch {args.Batch}, " +
            $"{args.Steps} steps after {LaunchSuite.WarmupSteps} warm-up; PyTorch {report.Torch} on {report.Blas} ({report.BlasGflops:F0} GFLOP/s on a 1024² sgemm, 1 thread)"));
        var names = PhaseTimes.Names;
        output.WriteLine($"{"shape",-22} {"framework",-9} {"round",5} {"samples/s",10} " + string.Join(" ", names.Select(n => $"{n + " s",12}")));
        foreach (var r in report.Results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Shape,-22} {r.Framework,-9} {r.Round,5} {r.SamplesPerSecond,10:F1} ") +
                string.Join(" ", names.Select(n => r.PhaseSeconds.TryGetValue(n, out double s)
                    ? string.Create(CultureInfo.InvariantCulture, $"{s,12:F3}")
                    : $"{"in backward",12}")));
        }

        foreach (var ratio in report.Ratios)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ratio DistClip / PyTorch, {ratio.Shape}, round {ratio.Round}: {ratio.DistClipOverPyTorch:F3}"));
        }

        // What DistClip's step waits on the wire for: the features' all-gather and what is left of the
        // gradient reduction after backward (the rest runs behind the image tower's backward).
        foreach (var r in report.Results.Where(r => r.Framework == DistClip && r.Workers > 1))
        {
            double step = r.PhaseSeconds.Values.Sum();
            double exposed = r.PhaseSeconds.GetValueOrDefault("all_gather") + r.PhaseSeconds.GetValueOrDefault("all_reduce");
            // Rank 0's share understates the step's wait when another rank waits longer: report the most any rank waited too.
            var ranks = r.PhaseSecondsByRank ?? [];
            double worst = ranks.Length == 0 ? exposed : ranks.Max(p => p.GetValueOrDefault("all_gather") + p.GetValueOrDefault("all_reduce"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"DistClip collective waits, {r.Shape}, round {r.Round}: rank 0 {exposed:F3} s of a {step:F3} s step ({exposed / step:P1}); " +
                $"the rank that waited most {worst:F3} s ({worst / step:P1})"));

            // The same waits split by cause (summary.json's wait_seconds): what the communication itself
            // added to the step, and what the ranks waited for each other's compute.
            if (r.WaitSecondsByRank is { Length: > 0 } waits)
            {
                double communication = waits.Max(w => w.GetValueOrDefault("exposed_communication"));
                double peer = waits.Max(w => w.GetValueOrDefault("peer_wait"));
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"DistClip exposed communication, {r.Shape}, round {r.Round}: {communication:F3} s ({communication / step:P1}) of the step; " +
                    $"waiting for the slower rank, the most any rank waited: {peer:F3} s ({peer / step:P1}) " +
                    $"(ranks: {string.Join(", ", waits.Select(w => string.Create(CultureInfo.InvariantCulture, $"{w.GetValueOrDefault("peer_wait"):F3}")))})"));
            }
            // Every rank's (means over the steps): a rank that waits far longer than another is held up
            // by a slower peer; waits that alternate between ranks from step to step show in both.
            foreach (var (phases, rank) in ranks.Select((p, i) => (p, i)))
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"    rank {rank}: all_gather {phases.GetValueOrDefault("all_gather"):F3} s, all_reduce {phases.GetValueOrDefault("all_reduce"):F3} s, " +
                    $"forward {phases.GetValueOrDefault("forward"):F3} s, backward {phases.GetValueOrDefault("backward"):F3} s"));
            }
        }

        // DDP reduces gradient buckets while backward runs; only DistClip's all-reduce is a phase of its own.
        output.WriteLine("PyTorch DDP's all-reduce runs inside backward; what it leaves exposed, and its ranks' waits for each other, are in PyTorch's backward figure.");
    }

    private static string Inv(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>The JSON line <c>clip_reference.py</c> prints.</summary>
    private sealed record ReferenceReport(
        [property: JsonPropertyName("torch")] string Torch,
        [property: JsonPropertyName("global_batch")] int GlobalBatch,
        [property: JsonPropertyName("steps")] int Steps,
        [property: JsonPropertyName("parameters")] long Parameters,
        [property: JsonPropertyName("samples_per_second")] double SamplesPerSecond,
        [property: JsonPropertyName("phase_seconds")] Dictionary<string, double> PhaseSeconds,
        [property: JsonPropertyName("parameter_shapes")] Dictionary<string, long[]> ParameterShapes,
        [property: JsonPropertyName("blas")] ReferenceBlas Blas);

    private sealed record ReferenceBlas(
        [property: JsonPropertyName("library")] string? Library,
        [property: JsonPropertyName("gflops")] double Gflops);
}

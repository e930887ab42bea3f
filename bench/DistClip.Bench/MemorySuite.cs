using System.Globalization;
using System.Text.RegularExpressions;
using DistClip.Config;
using DistClip.Training;

namespace DistClip.Bench;

/// <summary>One configuration of the memory suite: a world size, a global batch and a loss.</summary>
/// <param name="MicroBatch">Samples per feature-cached micro-batch (<c>--micro-batch</c>); null: the whole local batch at once.</param>
public sealed record MemoryRow(int Workers, int GlobalBatch, string Loss, int? MicroBatch)
{
    public string Name => $"w{Workers}-b{GlobalBatch}-{Loss}" + (MicroBatch is { } m ? $"-mb{m}" : "");

    /// <summary>What this row adds to the shared command line; the defaults (softmax, no micro-batch) add nothing.</summary>
    public IEnumerable<string> Flags()
    {
        if (Loss != "softmax")
        {
            yield return "--loss";
            yield return Loss;
        }

        if (MicroBatch is { } m)
        {
            yield return "--micro-batch";
            yield return Inv(m);
        }
    }

    private static string Inv(int value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What one row measured: each worker's peak RSS and the throughput from summary.json, or why it has none.</summary>
/// <param name="Status">ok, refused (the coordinator refused the settings), failed, out of memory or timeout.</param>
/// <param name="Reason">The first line of why a row did not finish; null when it did.</param>
/// <param name="ObservedPeakRssBytes">The largest worker peak RSS the benchmark itself saw in /proc while the row ran (a lower bound for a row that failed).</param>
public sealed record MemoryResult(
    string Name, int Workers, int GlobalBatch, string Loss, int? MicroBatch, int Steps,
    long[]? PeakRssBytes, long? PeakRssBytesMax, double? SamplesPerSecond, double WallSeconds,
    string Status, string? Reason, long ObservedPeakRssBytes);

/// <summary>
/// The <c>memory</c> suite: how a worker's peak memory grows with the global batch for each loss,
/// measured by real <c>coordinator launch</c> runs of clip-micro on generated data. Each row is a
/// fresh run; its workers report their peak RSS into summary.json. A row that fails, is refused or
/// runs past its time limit is reported as such and the suite goes on.
/// </summary>
public static partial class MemorySuite
{
    public const string Dataset = "synthetic:131072";
    public const int DefaultSteps = 3;

    private static readonly int[] Batches = [1_024, 4_096, 16_384, 65_536];
    private static readonly int[] QuickBatches = [1_024, 4_096];

    /// <summary>
    /// Two workers at each global batch with the softmax loss (the default), softmax with
    /// micro-batches of 1,024, and SigLIP; then global batch 16,384 on 1 and 4 workers.
    /// </summary>
    public static IReadOnlyList<MemoryRow> Rows { get; } =
    [
        .. Batches.SelectMany(b => new MemoryRow[] { new(2, b, "softmax", null), new(2, b, "softmax", 1_024), new(2, b, "siglip", null) }),
        new(1, 16_384, "softmax", null),
        new(4, 16_384, "softmax", null),
    ];

    /// <summary>The rows <c>--quick</c> and <c>--rows</c> leave, in suite order.</summary>
    /// <exception cref="ArgumentException">A name in <c>--rows</c> is not a row (the message lists them).</exception>
    public static IReadOnlyList<MemoryRow> Select(bool quick, IReadOnlyList<string>? names)
    {
        var unknown = (names ?? []).Where(n => Rows.All(r => r.Name != n)).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"unknown row(s) {string.Join(", ", unknown)}; rows: {string.Join(", ", Rows.Select(r => r.Name))}");
        }

        return Rows.Where(r => (!quick || QuickBatches.Contains(r.GlobalBatch)) && (names is null || names.Contains(r.Name))).ToList();
    }

    /// <summary>Runs <paramref name="rows"/> one after another; progress goes to <paramref name="progress"/> as each ends, the table to <paramref name="output"/>.</summary>
    public static async Task<List<MemoryResult>> RunAsync(IReadOnlyList<MemoryRow> rows, BenchArgs args, TextWriter output, TextWriter progress, CancellationToken ct)
    {
        int steps = args.StepsGiven ? args.Steps : DefaultSteps;
        var limit = TimeSpan.FromMinutes(args.RowMinutes);
        var results = new List<MemoryResult>();
        string scratch = Directory.CreateTempSubdirectory("distclip-bench-memory-").FullName;
        try
        {
            for (int i = 0; i < rows.Count; i++)
            {
                var row = rows[i];
                progress.WriteLine($"[{i + 1}/{rows.Count}] {row.Name}: {row.Workers} worker(s), global batch {row.GlobalBatch}, {steps} steps ...");
                string dir = Path.Combine(scratch, row.Name);
                var result = Measure(row, steps, await CoordinatorRun.RunAsync(Arguments(row, steps, dir, limit), limit, ct).ConfigureAwait(false), dir);
                // Each row that trains leaves a final checkpoint; the next row needs the disk more than anyone needs it.
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }

                progress.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{i + 1}/{rows.Count}] {row.Name}: {Describe(result)} in {result.WallSeconds:F0} s"));
                results.Add(result);
            }
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }

        Print(results, output);
        return results;
    }

    private static List<string> Arguments(MemoryRow row, int steps, string dir, TimeSpan limit)
    {
        string limitSeconds = ((int)limit.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        return
        [
            "launch", "--model", "clip-micro", "--dataset", Dataset,
            "--workers", Inv(row.Workers), "--global-batch", Inv(row.GlobalBatch), "--steps", Inv(steps),
            // Only the final checkpoint; a short evaluation on rank 0 (its memory is small next to a step's).
            "--checkpoint-every", "0", "--eval-samples", "1000", "--retrieval-samples", "0", "--log-every", "1000",
            // A lost worker ends the row at once; a slow step is bounded by the row's own limit, not by a collective timeout.
            "--max-restarts", "0", "--heartbeat-timeout", "60", "--collective-timeout", limitSeconds,
            "--run-dir", Path.Combine(dir, "run"), "--checkpoint-dir", Path.Combine(dir, "checkpoints"),
            .. row.Flags(),
        ];
    }

    private static MemoryResult Measure(MemoryRow row, int steps, CoordinatorRunResult run, string dir)
    {
        MemoryResult Result(string status, string? reason, RunSummary? summary = null) => new(
            row.Name, row.Workers, row.GlobalBatch, row.Loss, row.MicroBatch, steps,
            summary?.PeakRssBytes, summary?.PeakRssBytesMax, summary?.SamplesPerSecond, run.WallSeconds, status, reason, run.ObservedPeakRssBytes);

        string mib = string.Create(CultureInfo.InvariantCulture, $"{run.ObservedPeakRssBytes / (1024.0 * 1024.0):F0} MiB");
        if (run.TimedOut)
        {
            return Result("timeout", $"stopped after {run.WallSeconds / 60:F1} min; a worker had reached {mib}");
        }

        if (run.StoppedForMemory)
        {
            return Result("out of memory", $"stopped by the benchmark: under {CoordinatorRun.MemoryFloorBytes >> 20} MiB of the machine's memory left; a worker had reached {mib}");
        }

        string summaryPath = Path.Combine(dir, "run", "summary.json");
        if (run.ExitCode == 0 && File.Exists(summaryPath))
        {
            return Result("ok", null, RunSummary.Read(summaryPath));
        }

        string error = FirstError(run.Stderr) ?? $"coordinator exited with {run.ExitCode}";
        if (run.ExitCode == 2)
        {
            return Result("refused", error);
        }

        // A worker that ran out of memory says so in its own log; the coordinator only sees it exit.
        string? oom = WorkerLogLines(Path.Combine(dir, "run", "logs")).FirstOrDefault(l => OutOfMemory().IsMatch(l));
        return oom is not null ? Result("out of memory", oom.Trim())
            : error.Contains("status 137", StringComparison.Ordinal) ? Result("failed", $"{error} (SIGKILL: the kernel's OOM killer?)")
            : Result("failed", error);
    }

    /// <summary>The coordinator's first <c>error:</c> line, without the prefix.</summary>
    private static string? FirstError(string stderr) =>
        stderr.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("error: ", StringComparison.Ordinal))?["error: ".Length..];

    private static IEnumerable<string> WorkerLogLines(string logs) =>
        Directory.Exists(logs) ? Directory.EnumerateFiles(logs, "worker-*.log").Order(StringComparer.Ordinal).SelectMany(File.ReadLines) : [];

    [GeneratedRegex(@"out of memory|can't allocate memory|OutOfMemoryException|std::bad_alloc", RegexOptions.IgnoreCase)]
    private static partial Regex OutOfMemory();

    private static string Describe(MemoryResult r) => r.Reason is null ? r.Status : $"{r.Status}: {r.Reason}";

    private static void Print(List<MemoryResult> results, TextWriter output)
    {
        output.WriteLine($"{"row",-24} {"workers",7} {"global batch",12} {"loss",-8} {"micro-batch",11} {"peak RSS MiB",12} {"samples/s",10} {"wall s",7}  status");
        foreach (var r in results)
        {
            string peak = r.PeakRssBytesMax is { } max ? Mib(max) : r.ObservedPeakRssBytes > 0 ? ">" + Mib(r.ObservedPeakRssBytes) : "-";
            string rate = r.SamplesPerSecond is { } s ? s.ToString("F1", CultureInfo.InvariantCulture) : "-";
            string status = Describe(r);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Name,-24} {r.Workers,7} {r.GlobalBatch,12:N0} {r.Loss,-8} {(r.MicroBatch is { } m ? Inv(m) : "-"),11} {peak,12} {rate,10} {r.WallSeconds,7:F1}  {(status.Length > 120 ? status[..117] + "..." : status)}"));
        }

        output.WriteLine("peak RSS: the largest worker's VmHWM from summary.json (\">N\": the most the benchmark saw before the row ended without one)");
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F0", CultureInfo.InvariantCulture);

    private static string Inv(int value) => value.ToString(CultureInfo.InvariantCulture);
}

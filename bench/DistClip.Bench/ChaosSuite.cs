using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using DistClip.Config;

namespace DistClip.Bench;

/// <summary>One fault the drill injected: what, when, to whom, and how long until the run trained again.</summary>
public sealed record ChaosFault(int Index, string Kind, long AtStep, int Rank, double AtSeconds, double? RecoverySeconds);

/// <summary>One run of the drill as its summary reports it (null fields: the run left no summary).</summary>
public sealed record ChaosRun(
    string Name, int? ExitCode, bool TimedOut, double WallSeconds, int? Restarts, long? StepsRedone, long? Steps, string? ParametersSha256, string? DataOrderSha256);

/// <summary>The drill's verdict.</summary>
public sealed record ChaosResult(
    ChaosRun Faulty, ChaosRun Clean, IReadOnlyList<ChaosFault> Faults, bool ParametersEqual, bool DataOrderEqual, double? MedianRecoverySeconds, bool Passed);

/// <summary>
/// The chaos drill (issue #13): a 3-worker clip-micro run while the drill kills (SIGKILL), stops
/// (SIGSTOP) and stalls (a rank that stops making progress while it keeps heartbeating, through the
/// worker's <c>DISTCLIP_FAULTS</c> hook) seeded random workers at seeded random steps; then the same
/// run without faults. The target: no hang, no failed run, steps redone ≤ faults, the final
/// parameters and data order bit-identical to the fault-free run, median recovery under 10 s.
/// </summary>
public static partial class ChaosSuite
{
    private const int Workers = 3;
    private static readonly string[] Kinds = ["kill", "stop", "stall"];

    public static async Task<ChaosResult> RunAsync(BenchArgs args, TextWriter output, CancellationToken ct)
    {
        int steps = args.StepsGiven ? args.Steps : 400;
        int faults = args.Faults;
        if (steps < 40 + 10 * faults)
        {
            throw new ArgumentException($"--steps {steps} leaves too little room for {faults} faults (at least {40 + 10 * faults})");
        }

        string scratch = Directory.CreateTempSubdirectory("distclip-bench-chaos-").FullName;
        try
        {
            var plan = Plan(faults, steps, args.Seed);
            output.WriteLine($"chaos drill: {Workers} workers, clip-micro, {steps} steps, {faults} faults (seed {args.Seed})");
            foreach (var f in plan)
            {
                output.WriteLine($"  fault {f.Index}: {f.Kind} rank {f.Rank} at step {f.AtStep}");
            }

            var faulty = await RunOnceAsync("faulty", steps, faults, plan, scratch, output, ct);
            output.WriteLine($"faulty run: exit {faulty.Run.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? "none (timed out)"} in {faulty.Run.WallSeconds:F0} s");
            var clean = await RunOnceAsync("clean", steps, faults, [], scratch, output, ct);
            output.WriteLine($"fault-free run: exit {clean.Run.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? "none (timed out)"} in {clean.Run.WallSeconds:F0} s");

            var recoveries = faulty.Faults.Where(f => f.RecoverySeconds is not null).Select(f => f.RecoverySeconds!.Value).Order().ToList();
            double? median = recoveries.Count == 0 ? null
                : recoveries.Count % 2 == 1 ? recoveries[recoveries.Count / 2] : (recoveries[(recoveries.Count / 2) - 1] + recoveries[recoveries.Count / 2]) / 2;
            bool parametersEqual = faulty.Run.ParametersSha256 is not null && faulty.Run.ParametersSha256 == clean.Run.ParametersSha256;
            bool orderEqual = faulty.Run.DataOrderSha256 is not null && faulty.Run.DataOrderSha256 == clean.Run.DataOrderSha256;
            bool passed = faulty.Run.ExitCode == 0 && clean.Run.ExitCode == 0 && parametersEqual && orderEqual
                && faulty.Run.StepsRedone <= faulty.Faults.Count && median < 10 && faulty.Faults.Count == faults;
            var result = new ChaosResult(faulty.Run, clean.Run, faulty.Faults, parametersEqual, orderEqual, median, passed);
            Print(result, output);
            return result;
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>One fault per equal slice of the run (after a warm-up), at a seeded step in the slice's first half, on a seeded rank.</summary>
    internal static List<ChaosFault> Plan(int faults, int steps, int seed)
    {
        var random = new Random(seed);
        double slice = (steps - 30.0) / Math.Max(1, faults);
        return [.. Enumerable.Range(0, faults).Select(i => new ChaosFault(
            i, Kinds[random.Next(Kinds.Length)], 20 + (long)(i * slice) + random.Next(Math.Max(1, (int)(slice / 2))), random.Next(Workers), 0, null))];
    }

    private static async Task<(ChaosRun Run, List<ChaosFault> Faults)> RunOnceAsync(
        string name, int steps, int faults, IReadOnlyList<ChaosFault> plan, string scratch, TextWriter output, CancellationToken ct)
    {
        string runDir = Path.Combine(scratch, name);
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(CoordinatorRun.CoordinatorDll);
        foreach (string a in (string[])[
            "launch", "--model", "clip-micro", "--workers", "3", "--global-batch", "48", "--steps", steps.ToString(CultureInfo.InvariantCulture),
            "--seed", "7", "--log-every", "1", "--checkpoint-every", "100", "--eval-samples", "500", "--retrieval-samples", "0",
            "--heartbeat-timeout", "3", "--collective-timeout", "30", "--step-timeout", "6", "--max-restarts", (2 * faults + 2).ToString(CultureInfo.InvariantCulture),
            "--run-id", name, "--run-dir", runDir, "--checkpoint-dir", Path.Combine(scratch, "checkpoints")])
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        // Stalls come from inside the worker (a rank that stops stepping but keeps heartbeating);
        // each fires once per run, wherever that rank's step happens to be redone.
        var stalls = plan.Where(f => f.Kind == "stall").Select(f => $"stall@{f.AtStep},rank={f.Rank}").ToList();
        psi.Environment["DISTCLIP_FAULTS"] = string.Join(';', stalls);
        psi.Environment["DISTCLIP_FAULTS_STATE"] = Path.Combine(scratch, name + "-faults");

        var watch = new RunWatch();
        var wall = Stopwatch.StartNew();
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the coordinator");
        process.OutputDataReceived += (_, e) => watch.Line(e.Data, wall.Elapsed.TotalSeconds);
        process.ErrorDataReceived += (_, e) => watch.Line(e.Data, wall.Elapsed.TotalSeconds);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var injected = new List<ChaosFault>();
        var limit = TimeSpan.FromSeconds(120 + (steps * 2.0) + (faults * 60.0));
        bool timedOut = false;
        try
        {
            using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
            var exited = process.WaitForExitAsync(ct);
            int next = 0;
            while (!exited.IsCompleted)
            {
                if (wall.Elapsed > limit)
                {
                    timedOut = true;
                    break;
                }

                long step = watch.Step;
                // A fault waits until the previous one has been recovered from: the drill measures each
                // alone. A stall fires inside the worker while it computes its step, so it is taken as
                // injected when the step before it is reported (its rank is then about to block).
                bool settled = injected.Count == 0 || injected[^1].RecoverySeconds is not null;
                if (next < plan.Count && settled && step >= plan[next].AtStep - (plan[next].Kind == "stall" ? 1 : 0))
                {
                    var fault = plan[next++];
                    if (fault.Kind != "stall")
                    {
                        int pid = watch.PidOfSlot(fault.Rank);
                        await SignalAsync(pid, fault.Kind == "kill" ? "-KILL" : "-STOP").ConfigureAwait(false);
                    }

                    injected.Add(fault with { AtStep = step, AtSeconds = wall.Elapsed.TotalSeconds });
                    output.WriteLine($"  t={wall.Elapsed.TotalSeconds,6:F1} s  fault {fault.Index}: {fault.Kind} rank {fault.Rank} at step {step}");
                }

                // Recovered: a generation formed after the fault, and a step trained in it.
                for (int i = 0; i < injected.Count; i++)
                {
                    var f = injected[i];
                    if (f.RecoverySeconds is null && watch.FirstStepAfterFormingSince(f.AtSeconds) is double trained)
                    {
                        injected[i] = f with { RecoverySeconds = trained - f.AtSeconds };
                    }
                }

                await Task.WhenAny(exited, tick.WaitForNextTickAsync(ct).AsTask()).ConfigureAwait(false);
            }

            if (timedOut && !process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        // A stall injected from inside the worker is recorded by when its rank was declared lost.
        for (int i = 0; i < injected.Count; i++)
        {
            if (injected[i].RecoverySeconds is null && watch.FirstStepAfterFormingSince(injected[i].AtSeconds) is double trained)
            {
                injected[i] = injected[i] with { RecoverySeconds = trained - injected[i].AtSeconds };
            }
        }

        wall.Stop();
        string summaryPath = Path.Combine(runDir, "summary.json");
        RunSummary? summary = File.Exists(summaryPath) ? RunSummary.FromJson(await File.ReadAllTextAsync(summaryPath, ct).ConfigureAwait(false)) : null;
        if (process.ExitCode != 0 || timedOut)
        {
            output.WriteLine($"{name} run output (last lines):");
            foreach (string line in watch.Tail(30))
            {
                output.WriteLine("  " + line);
            }
        }

        return (new ChaosRun(name, timedOut ? null : process.ExitCode, timedOut, wall.Elapsed.TotalSeconds, summary?.Restarts, summary?.StepsRedone, summary?.Steps,
            summary?.ParametersSha256, summary?.DataOrderSha256), injected);
    }

    private static void Print(ChaosResult result, TextWriter output)
    {
        output.WriteLine();
        output.WriteLine("| fault | kind | rank | step | at (s) | back to training after (s) |");
        output.WriteLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var f in result.Faults)
        {
            output.WriteLine($"| {f.Index} | {f.Kind} | {f.Rank} | {f.AtStep} | {f.AtSeconds:F1} | {(f.RecoverySeconds is double r ? r.ToString("F1", CultureInfo.InvariantCulture) : "-")} |");
        }

        output.WriteLine();
        output.WriteLine("| run | exit | wall (s) | restarts | steps redone | parameters_sha256 | data_order_sha256 |");
        output.WriteLine("| --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in new[] { result.Faulty, result.Clean })
        {
            output.WriteLine($"| {r.Name} | {(r.TimedOut ? "timed out" : r.ExitCode?.ToString(CultureInfo.InvariantCulture))} | {r.WallSeconds:F0} | {r.Restarts} | {r.StepsRedone} | {r.ParametersSha256?[..16]} | {r.DataOrderSha256?[..16]} |");
        }

        output.WriteLine();
        output.WriteLine($"faults injected {result.Faults.Count}; restarts {result.Faulty.Restarts}; steps redone {result.Faulty.StepsRedone}; " +
            $"median recovery {(result.MedianRecoverySeconds is double m ? m.ToString("F1", CultureInfo.InvariantCulture) + " s" : "-")}; " +
            $"parameters equal {result.ParametersEqual}; data order equal {result.DataOrderEqual}; target {(result.Passed ? "met" : "NOT met")}");
    }

    /// <summary>kill(1) with a signal; a pid the drill has not seen (0) is left alone.</summary>
    private static async Task SignalAsync(int pid, string signal)
    {
        if (pid <= 0)
        {
            return;
        }

        using var kill = Process.Start("kill", [signal, pid.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync().ConfigureAwait(false);
    }

    /// <summary>What the coordinator's output says, line by line: the step, generations formed, and which pid serves each slot.</summary>
    private sealed partial class RunWatch
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<int, int> _pidBySlot = [];
        private readonly List<double> _formed = [];
        private readonly List<(double At, long Step)> _steps = [];
        private readonly Queue<string> _tail = new();
        private long _step;

        public void Line(string? line, double at)
        {
            if (line is null)
            {
                return;
            }

            lock (_lock)
            {
                _tail.Enqueue(line);
                if (_tail.Count > 200)
                {
                    _tail.Dequeue();
                }

                if (StepLine().Match(line) is { Success: true } s)
                {
                    _step = long.Parse(s.Groups[1].Value, CultureInfo.InvariantCulture);
                    _steps.Add((at, _step));
                }
                else if (Started().Match(line) is { Success: true } w)
                {
                    _pidBySlot[int.Parse(w.Groups[1].Value, CultureInfo.InvariantCulture)] = int.Parse(w.Groups[2].Value, CultureInfo.InvariantCulture);
                }
                else if (Formed().IsMatch(line))
                {
                    _formed.Add(at);
                }
            }
        }

        /// <summary>The last step the coordinator reported.</summary>
        public long Step
        {
            get
            {
                lock (_lock)
                {
                    return _step;
                }
            }
        }

        public int PidOfSlot(int slot)
        {
            lock (_lock)
            {
                return _pidBySlot.GetValueOrDefault(slot);
            }
        }

        /// <summary>When the first step after the first generation formed since <paramref name="since"/> was reported; null if not yet.</summary>
        public double? FirstStepAfterFormingSince(double since)
        {
            lock (_lock)
            {
                double formed = _formed.FirstOrDefault(t => t > since, double.NaN);
                if (double.IsNaN(formed))
                {
                    return null;
                }

                var step = _steps.FirstOrDefault(s => s.At >= formed, (double.NaN, 0));
                return double.IsNaN(step.At) ? null : step.At;
            }
        }

        public List<string> Tail(int lines)
        {
            lock (_lock)
            {
                return [.. _tail.TakeLast(lines)];
            }
        }

        [GeneratedRegex(@"^step (\d+)/")]
        private static partial Regex StepLine();

        [GeneratedRegex(@"Started worker slot (\d+) \(pid (\d+)")]
        private static partial Regex Started();

        [GeneratedRegex(@"Generation (\d+) formed")]
        private static partial Regex Formed();
    }
}

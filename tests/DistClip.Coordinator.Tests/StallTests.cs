using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Workers that stop, stall or fail, with real processes on 127.0.0.1: the one to blame is named and
/// killed, its replacement starts at once, a failure's cause reaches the coordinator's output, and an
/// interrupted coordinator ends within a bound whatever its workers are blocked in. The stall and the
/// throw come from the worker's fault hook (DISTCLIP_FAULTS, inherited from the coordinator).
/// </summary>
public sealed class StallTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-stall-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_stopped_worker_is_killed_and_replaced_within_the_heartbeat_timeout_and_the_run_finishes()
    {
        await using var run = CoordinatorProcess.Start(null,
            [.. Runs.Quick(_dir, "sigstop"), "--workers", "2", "--steps", "60", "--checkpoint-every", "10"]);
        int pid = await WorkerPid(run, slot: 1);
        await ReachedStep(run, 2);

        Signal("STOP", pid);
        var clock = Stopwatch.StartNew();
        await run.WaitForLineAsync($@"Killing worker slot 1 \(pid {pid}\): rank 1 .* was lost: no heartbeat", TimeSpan.FromSeconds(30));
        await run.WaitForLineAsync($@"Started worker slot 1 \(pid (?!{pid}\))\d+\)", TimeSpan.FromSeconds(30));
        var replaced = clock.Elapsed;

        var result = await Finished(run, "sigstop");
        // --heartbeat-timeout 10 (Runs.Quick), then the kill, the exit and the start: a few seconds more.
        Assert.True(replaced < TimeSpan.FromSeconds(10 + 8), $"the stopped worker was replaced {replaced} after SIGSTOP");
        Assert.Equal(1, Runs.Summary(_dir, "sigstop").GetProperty("restarts").GetInt32());
        Assert.Equal(60, Runs.Summary(_dir, "sigstop").GetProperty("steps").GetInt64());
        Assert.False(IsRunning(pid), $"the stopped worker (pid {pid}) is still there\n{result.Stdout}");
    }

    [Fact]
    public async Task A_stalled_rank_is_blamed_by_name_and_killed_and_the_ranks_waiting_on_it_are_not()
    {
        // Rank 1 blocks for good in the forward pass of step 4, heartbeating all along; ranks 0 and 2
        // wait on it in the exchange until their collective times out (20 s, Runs.Quick).
        var faults = new Dictionary<string, string> { ["DISTCLIP_FAULTS"] = "stall@4,rank=1", ["DISTCLIP_FAULTS_STATE"] = Path.Combine(_dir, "faults") };
        await using var run = CoordinatorProcess.Start(faults,
            [.. Runs.Quick(_dir, "stall"), "--workers", "3", "--global-batch", "48", "--steps", "8"]);
        int pid = await WorkerPid(run, slot: 1);

        var result = await Finished(run, "stall");
        Assert.Matches(@"rank 1 \(worker [^)]*\) was lost: stalled", result.Stdout);
        Assert.DoesNotMatch(@"rank [02] \(worker [^)]*\) was lost", result.Stdout);
        Assert.Matches($@"Killing worker slot 1 \(pid {pid}\)", result.Stdout);
        Assert.Equal(1, Runs.Summary(_dir, "stall").GetProperty("restarts").GetInt32());
        Assert.False(IsRunning(pid), $"the stalled worker (pid {pid}) is still there");
    }

    [Fact]
    public async Task A_worker_that_throws_is_reported_with_its_exception_rank_and_step_and_replaced()
    {
        var faults = new Dictionary<string, string> { ["DISTCLIP_FAULTS"] = "throw@3,rank=1", ["DISTCLIP_FAULTS_STATE"] = Path.Combine(_dir, "faults") };
        await using var run = CoordinatorProcess.Start(faults, [.. Runs.Quick(_dir, "throw"), "--workers", "2", "--steps", "6"]);

        var result = await Finished(run, "throw");
        // Steps done when it threw computing step 3: 2.
        Assert.Matches(@"worker failure: rank 1 \(worker [^,]+, generation 1\) at step 2 in phase \w+ failed: InvalidOperationException: injected failure \(throw@3,rank=1", result.Stdout);
        Assert.Matches(@"rank 1 \(worker [^)]*\) was lost: it failed: InvalidOperationException: injected failure", result.Stdout);
        Assert.Equal(1, Runs.Summary(_dir, "throw").GetProperty("restarts").GetInt32());
    }

    [Fact]
    public async Task The_same_failure_again_after_a_restart_ends_the_run_naming_it_instead_of_spending_every_restart()
    {
        // The same fault three times: each incarnation of rank 1 throws the same error at the same step.
        var faults = new Dictionary<string, string>
        {
            ["DISTCLIP_FAULTS"] = "throw@3,rank=1;throw@3,rank=1;throw@3,rank=1",
            ["DISTCLIP_FAULTS_STATE"] = Path.Combine(_dir, "faults"),
        };
        await using var run = CoordinatorProcess.Start(faults,
            [.. Runs.Quick(_dir, "again"), "--workers", "2", "--steps", "6", "--max-restarts", "5"]);

        var result = await run.WaitAsync(RunDeadline);
        output.WriteLine($"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.True(result.ExitCode == 1, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Matches(@"error: the run failed: rank 1 \(worker [^,]+, generation 2\) at step 2 in phase \w+ failed with the same error as in generation 1, which a restart did not fix: InvalidOperationException: injected failure \(throw@3,rank=1", result.Stderr);
        Assert.Equal(2, Regex.Matches(result.Stdout, @"Started worker slot 1 \(").Count);
    }

    [Fact]
    public async Task An_interrupted_coordinator_exits_within_a_bound_and_leaves_no_worker_even_a_stopped_one()
    {
        await using var run = CoordinatorProcess.Start(null, [.. Runs.Quick(_dir, "term"), "--workers", "2", "--steps", "2000", "--checkpoint-every", "0"]);
        int[] pids = [await WorkerPid(run, slot: 0), await WorkerPid(run, slot: 1)];
        await ReachedStep(run, 2);

        Signal("STOP", pids[1]); // it cannot hear "stop"
        Signal("TERM", run.Id);
        var clock = Stopwatch.StartNew();
        var result = await run.WaitAsync(TimeSpan.FromSeconds(60));
        var took = clock.Elapsed;
        output.WriteLine($"exit {result.ExitCode} after {took}\n{result.Stdout}\n{result.Stderr}");

        Assert.True(result.ExitCode == 130, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        // A few seconds to tell the workers, a few for them to go, then SIGKILL; the servers' drains.
        Assert.True(took < TimeSpan.FromSeconds(20), $"the coordinator took {took} to exit after SIGTERM");
        Assert.Contains($"Killing worker pid {pids[1]}", result.Stdout);
        Assert.All(pids, p => Assert.False(IsRunning(p), $"worker pid {p} outlived its coordinator"));
    }

    [Fact]
    public async Task A_worker_whose_training_thread_ignores_the_abort_exits_on_its_own_so_nothing_has_to_kill_it()
    {
        // Under serve (Kubernetes) no launcher kills a stuck worker: it must end itself. Rank 1 blocks
        // for good in step 3; rank 0's collective times out (10 s), the run fails (no restarts), and
        // rank 1, told to stop, cannot: within another 10 s it exits with status 5 (Stuck).
        var secret = new Dictionary<string, string> { ["DISTCLIP_SECRET"] = "stuck-test-secret" };
        await using var coordinator = CoordinatorProcess.Start(secret,
            "serve", "--bind", "127.0.0.1", "--port", "0", "--workers", "2", "--model", "clip-micro", "--global-batch", "32", "--steps", "8",
            "--collective-timeout", "10", "--max-restarts", "0", "--run-dir", Path.Combine(_dir, "stuck"), "--checkpoint-dir", Path.Combine(_dir, "checkpoints"));
        var listening = await coordinator.WaitForLineAsync(@"listening at (\S+);", TimeSpan.FromSeconds(60));

        var workers = new List<Process>();
        try
        {
            for (int i = 0; i < 2; i++)
            {
                var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                psi.ArgumentList.Add(CoordinatorProcess.WorkerDllPath);
                psi.ArgumentList.Add("--coordinator");
                psi.ArgumentList.Add(listening.Groups[1].Value);
                psi.Environment["DISTCLIP_SECRET"] = secret["DISTCLIP_SECRET"];
                psi.Environment["DISTCLIP_FAULTS"] = "stall@3,rank=1";
                psi.Environment["DISTCLIP_FAULTS_STATE"] = Path.Combine(_dir, "faults");
                psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
                workers.Add(Process.Start(psi)!);
            }

            var logs = workers.Select(w => Task.WhenAll(w.StandardOutput.ReadToEndAsync(), w.StandardError.ReadToEndAsync())).ToList();
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(150));
            await Task.WhenAll(workers.Select(w => w.WaitForExitAsync(deadline.Token)));
            string[] texts = [.. (await Task.WhenAll(logs)).Select(l => string.Concat(l))];
            output.WriteLine(string.Join("\n---\n", texts.Select((t, i) => $"worker {i}: exit {workers[i].ExitCode}\n{t}")));

            int stuck = Array.FindIndex(workers.ToArray(), w => w.ExitCode == 5);
            Assert.True(stuck >= 0, "no worker exited with status 5 (Stuck)");
            Assert.Contains("the training thread did not stop within 10 s", texts[stuck]);
            Assert.Contains("DISTCLIP_FAULTS: stall at step 3", texts[stuck]);
            Assert.NotEqual(5, workers[1 - stuck].ExitCode);
        }
        finally
        {
            foreach (var w in workers.Where(w => !w.HasExited))
            {
                w.Kill(entireProcessTree: true);
            }

            workers.ForEach(w => w.Dispose());
        }
    }

    private async Task<CoordinatorProcess.Result> Finished(CoordinatorProcess run, string name)
    {
        var result = await run.WaitAsync(RunDeadline);
        output.WriteLine($"--- {name}: exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.True(result.ExitCode == 0, $"run {name} exited {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        return result;
    }

    private static async Task<int> WorkerPid(CoordinatorProcess run, int slot)
    {
        var started = await run.WaitForLineAsync($@"Started worker slot {slot} \(pid (\d+)", TimeSpan.FromSeconds(60));
        return int.Parse(started.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Waits until rank 0 has reported a step of at least <paramref name="step"/> (every step is printed: --log-every 1).</summary>
    internal static Task ReachedStep(CoordinatorProcess run, int step) =>
        run.WaitForLineAsync($@"^step (?:[{step}-9]|\d{{2,}})/", TimeSpan.FromSeconds(120));

    internal static void Signal(string signal, int pid)
    {
        using var kill = Process.Start("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.True(kill.ExitCode == 0, $"kill -{signal} {pid} failed");
    }

    /// <summary>Whether a process is still there: a zombie (ended, not yet reaped) is not.</summary>
    private static bool IsRunning(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }
}

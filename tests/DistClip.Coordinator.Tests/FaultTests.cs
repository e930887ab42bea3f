using System.Diagnostics;
using System.Text.Json;
using DistClip.Checkpoints;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Real runs with a fault the workers inject themselves (DISTCLIP_FAULTS, docs/architecture.md
/// "Fault injection for tests"): a NaN gradient, a divergence, a checkpoint that cannot be written.
/// </summary>
public sealed class FaultTests : IDisposable
{
    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(4);

    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-faults-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The fault plan, and a marker directory of this test's own so that no other run's markers count.</summary>
    private Dictionary<string, string> Faults(string plan, string name) => new()
    {
        ["DISTCLIP_FAULTS"] = plan,
        ["DISTCLIP_FAULTS_STATE"] = Path.Combine(_dir, "fault-state-" + name),
    };

    private async Task<CoordinatorProcess.Result> RunAsync(string plan, string name, params string[] args)
    {
        await using var run = CoordinatorProcess.Start(Faults(plan, name), [.. Runs.Quick(_dir, name), "--workers", "2", .. args]);
        return await run.WaitAsync(RunDeadline);
    }

    [Fact]
    public async Task A_NaN_gradient_at_step_3_is_skipped_on_every_rank_and_counted_and_the_run_finishes_finite()
    {
        var result = await RunAsync("nan@3", "nan", "--steps", "6", "--checkpoint-every", "2");

        Assert.True(result.ExitCode == 0, $"expected exit 0, got {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        var summary = Runs.Summary(_dir, "nan");
        Assert.Equal(1, summary.GetProperty("skipped_steps").GetInt64());
        Assert.Equal(0, summary.GetProperty("restarts").GetInt32());
        double loss = summary.GetProperty("final_loss").GetDouble();
        Assert.True(double.IsFinite(loss), $"expected a finite final loss, got {loss}");
        Assert.All(Runs.FinalParameters(_dir, "nan"), p => Assert.True(p.Value.All(float.IsFinite), $"{p.Key} is not finite"));
        for (int rank = 0; rank < 2; rank++)
        {
            Assert.Contains("Step 3 skipped: gradient norm NaN", File.ReadAllText(Path.Combine(_dir, "nan", "logs", $"worker-{rank}.log")));
        }
    }

    [Fact]
    public async Task Four_NaN_steps_in_a_row_with_three_allowed_fail_the_run_as_diverged_and_the_newest_checkpoint_stays_finite()
    {
        var result = await RunAsync("nan@3-6", "diverged", "--steps", "10", "--checkpoint-every", "1", "--max-skipped-steps", "3", "--max-restarts", "0");

        Assert.True(result.ExitCode != 0, $"expected the run to fail\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        string said = result.Stdout + result.Stderr + string.Concat(
            Directory.GetFiles(Path.Combine(_dir, "diverged", "logs"), "worker-*.log").Select(File.ReadAllText));
        Assert.Contains("training diverged: steps 3–6 had a non-finite gradient norm", said);
        // Steps 3 to 5 were skipped, so their checkpoints hold step 2's finite weights; step 6 diverged before its checkpoint.
        var latest = new CheckpointStore(new CheckpointOptions(Path.Combine(_dir, "checkpoints"), "diverged")).ResolveLatest(CancellationToken.None);
        Assert.Equal(5, latest?.Step);
        Assert.All(Runs.FinalParameters(_dir, "diverged"), p => Assert.True(p.Value.All(float.IsFinite), $"{p.Key} is not finite"));
    }

    [Fact]
    public async Task A_summary_that_cannot_be_written_is_reported_and_printed_instead_and_the_run_exits_1()
    {
        // The summary is written beside its name and renamed; a directory where the temporary file goes makes that fail.
        Directory.CreateDirectory(Path.Combine(_dir, "no-summary", "summary.json.tmp"));
        var result = await RunAsync("", "no-summary", "--steps", "2", "--checkpoint-every", "0");

        Assert.True(result.ExitCode == 1, $"expected exit 1, got {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        Assert.Contains($"error: the summary could not be written to {Path.Combine(_dir, "no-summary", "summary.json")}", result.Stderr);
        Assert.Contains("\"parameters_sha256\":", result.Stdout);
        Assert.False(File.Exists(Path.Combine(_dir, "no-summary", "summary.json")));
    }

    [Fact]
    public async Task A_checkpoint_write_that_fails_is_counted_and_training_goes_on_to_commit_the_next_one()
    {
        var result = await RunAsync("write-fail@2", "write-fail", "--steps", "6", "--checkpoint-every", "2");

        Assert.True(result.ExitCode == 0, $"expected exit 0, got {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        Assert.Equal(1, Runs.Summary(_dir, "write-fail").GetProperty("checkpoint_failures").GetInt32());
        Assert.Contains("checkpoint of step 4 committed", result.Stdout);
        var store = new CheckpointStore(new CheckpointOptions(Path.Combine(_dir, "checkpoints"), "write-fail"));
        Assert.Equal([4L, 6L], store.CommittedSteps());
        Assert.Empty(Directory.GetFileSystemEntries(store.RunDirectory, ".tmp-*"));
        string log = File.ReadAllText(Path.Combine(_dir, "write-fail", "logs", "worker-0.log"));
        Assert.Contains($"Checkpoint of step 2 could not be written to {store.RunDirectory}: No space left on device (injected by DISTCLIP_FAULTS)", log);
    }

    [Fact]
    public async Task Checkpoints_fail_on_a_full_tmpfs_and_commit_once_it_has_room_again()
    {
        string small = Path.Combine(_dir, "small");
        Directory.CreateDirectory(small);
        // A clip-micro checkpoint is about 43 MB: none fits in 2 MiB.
        await Mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", small);
        try
        {
            await using var run = CoordinatorProcess.Start(null,
                [.. Runs.Quick(_dir, "full"), "--workers", "2", "--steps", "16", "--checkpoint-every", "2", "--checkpoint-failures", "20", "--checkpoint-dir", small]);
            // Rank 0 reports step 3 after its step-2 checkpoint failed; then the disk gets room.
            await run.WaitForLineAsync(@"^step 3/16", RunDeadline);
            await Mount("-o", "remount,size=512m", small);
            var result = await run.WaitAsync(RunDeadline);

            Assert.True(result.ExitCode == 0, $"expected exit 0, got {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
            int failures = Runs.Summary(_dir, "full").GetProperty("checkpoint_failures").GetInt32();
            Assert.InRange(failures, 1, 7);
            var store = new CheckpointStore(new CheckpointOptions(small, "full"));
            Assert.Equal(16, store.ResolveLatest(CancellationToken.None)?.Step);
            Assert.DoesNotContain(2L, store.CommittedSteps());
            Assert.Contains("No space left on device", File.ReadAllText(Path.Combine(_dir, "full", "logs", "worker-0.log")));
        }
        finally
        {
            await Mount("-u", small);
        }
    }

    /// <summary>mount(8), or umount(8) with "-u"; a failure names the command and what it said (the test needs root).</summary>
    private static async Task Mount(params string[] args)
    {
        var psi = new ProcessStartInfo(args[0] == "-u" ? "umount" : "mount") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in args[0] == "-u" ? args[1..] : args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        string error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0,
            $"{psi.FileName} {string.Join(' ', psi.ArgumentList)} failed ({process.ExitCode}): {error}; this test mounts a tmpfs and needs root (CAP_SYS_ADMIN)");
    }
}

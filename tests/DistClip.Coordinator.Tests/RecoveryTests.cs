using System.Text.RegularExpressions;
using DistClip.Config;
using Xunit.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Recovery from live peers with real processes: workers killed (SIGKILL, by the worker's own fault
/// hook, so the moment is exact) in every phase of a step, and the run ends bit-identical to one
/// that never lost anybody, having redone at most the interrupted step per loss.
/// </summary>
public sealed class RecoveryTests(ITestOutputHelper output) : IDisposable
{
    private const int Steps = 14;
    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(6);
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-recovery-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Workers_killed_in_every_phase_cost_at_most_the_interrupted_step_each_and_change_no_bit()
    {
        var clean = await CoordinatorProcess.RunAsync(RunDeadline, Args("clean"));
        Assert.True(clean.ExitCode == 0, $"the uninterrupted run exited {clean.ExitCode}\n{clean.Stdout}\n{clean.Stderr}");

        // One loss per phase, each on a rank other than the last one's; rank 0 is killed while it
        // writes the checkpoint of step 12 (every 3 steps).
        string[] phases = ["forward", "exchange", "backward", "reduce", "optimizer"];
        string plan = string.Join(';', phases.Select((p, i) => $"kill@{3 + (2 * i)},rank={1 + (i % 2)},point={p}")) + ";kill@12,rank=0,point=checkpoint";
        var environment = new Dictionary<string, string>
        {
            ["DISTCLIP_FAULTS"] = plan,
            ["DISTCLIP_FAULTS_STATE"] = Path.Combine(_dir, "faults"),
        };
        await using var run = CoordinatorProcess.Start(environment, Args("faulty"));
        var result = await run.WaitAsync(RunDeadline);
        output.WriteLine($"--- {plan}: exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");

        var summary = RunSummary.FromJson(File.ReadAllText(Path.Combine(_dir, "faulty", "summary.json")));
        var expected = RunSummary.FromJson(File.ReadAllText(Path.Combine(_dir, "clean", "summary.json")));
        Assert.Equal(6, summary.Restarts);
        Assert.InRange(summary.StepsRedone, 0, 6);
        // Every generation after a loss took a survivor's state, never the checkpoint.
        Assert.Equal(6, Regex.Matches(result.Stdout + result.Stderr, @"Generation \d+ formed with 3 workers, starting from rank \d's kept state at step \d+").Count);
        Assert.Equal(Steps, summary.Steps);
        Assert.Equal(expected.ParametersSha256, summary.ParametersSha256);
        Assert.Equal(expected.DataOrderSha256, summary.DataOrderSha256);
    }

    private string[] Args(string name) =>
        [.. Runs.Quick(_dir, name).Select(a => a == "32" ? "30" /* the global batch, a multiple of 3 */ : a), "--workers", "3",
            "--steps", Steps.ToString(System.Globalization.CultureInfo.InvariantCulture), "--checkpoint-every", "3", "--max-restarts", "6"];
}

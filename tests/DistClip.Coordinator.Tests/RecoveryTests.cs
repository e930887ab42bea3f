using DistClip.Config;
using Xunit.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Recovery from live peers with real processes: a worker killed (SIGKILL, by the worker's own fault
/// hook, so the moment is exact) in each phase of a step, and the run ends bit-identical to one that
/// never lost anybody, having redone at most the interrupted step.
/// </summary>
public sealed class RecoveryTests(ITestOutputHelper output, RecoveryTests.Uninterrupted fixture) : IClassFixture<RecoveryTests.Uninterrupted>, IDisposable
{
    private const int Steps = 12;
    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-recovery-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The run every faulty one must end equal to, trained once for the class.</summary>
    public sealed class Uninterrupted : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("distclip-recovery-clean-").FullName;

        public Uninterrupted()
        {
            var result = CoordinatorProcess.RunAsync(RunDeadline, Args(_dir, "clean")).GetAwaiter().GetResult();
            Assert.True(result.ExitCode == 0, $"the uninterrupted run exited {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
            Summary = RunSummary.FromJson(File.ReadAllText(Path.Combine(_dir, "clean", "summary.json")));
        }

        public RunSummary Summary { get; }

        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }

    [Theory]
    [InlineData("forward", 1)]
    [InlineData("exchange", 2)]
    [InlineData("backward", 1)]
    [InlineData("reduce", 2)]
    [InlineData("optimizer", 1)]
    [InlineData("checkpoint", 0)]
    public async Task A_worker_killed_in_any_phase_costs_at_most_the_interrupted_step_and_changes_no_bit(string point, int rank)
    {
        // The checkpoint is rank 0's (every 3 steps); step 6 is one of its checkpoint steps.
        var environment = new Dictionary<string, string>
        {
            ["DISTCLIP_FAULTS"] = $"kill@6,rank={rank},point={point}",
            ["DISTCLIP_FAULTS_STATE"] = Path.Combine(_dir, "faults"),
        };
        await using var run = CoordinatorProcess.Start(environment, Args(_dir, point));
        var result = await run.WaitAsync(RunDeadline);
        output.WriteLine($"--- kill in {point} on rank {rank}: exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");

        var summary = RunSummary.FromJson(File.ReadAllText(Path.Combine(_dir, point, "summary.json")));
        var clean = fixture.Summary;
        Assert.Equal(1, summary.Restarts);
        Assert.InRange(summary.StepsRedone, 0, 1);
        Assert.Contains("kept state at step", result.Stdout + result.Stderr); // a survivor served, not the checkpoint
        Assert.Equal(Steps, summary.Steps);
        Assert.Equal(clean.ParametersSha256, summary.ParametersSha256);
        Assert.Equal(clean.DataOrderSha256, summary.DataOrderSha256);
    }

    private static string[] Args(string dir, string name) =>
        [.. Runs.Quick(dir, name).Select(a => a == "32" ? "30" /* the global batch, a multiple of 3 */ : a), "--workers", "3", "--steps", Steps.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--checkpoint-every", "3", "--max-restarts", "2"];
}

using DistClip.Config;
using DistClip.Coordinator.Runs;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Where a new generation takes its state from (docs/architecture.md, "Recovery from live peers"):
/// the survivor that kept the most steps, the latest checkpoint when it is newer or nobody kept
/// anything, and how many steps the choice sends the run back. In process, fake clock.
/// </summary>
public sealed class RecoveryPlanTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _time = new();
    private readonly List<Membership> _runs = [];

    public void Dispose() => _runs.ForEach(r => r.Dispose());

    [Fact]
    public async Task The_next_generation_takes_the_state_of_the_survivor_that_completed_the_most_steps_not_the_checkpoint()
    {
        var run = Start(worldSize: 3);
        await Form(run, ("w0", -1), ("w1", -1), ("w2", -1));
        run.ReportCheckpoint(new CheckpointReport(1, 20, "/ckpt/step-000000020"));
        Beat(run, 1, ("w0", 31), ("w1", 30), ("w2", 31));
        run.HeartbeatBroken("w2", 1, "connection reset");

        // w1 was cut off mid-all-reduce and kept step 30; w0 completed step 31; the replacement holds nothing.
        var seats = await Form(run, ("w0", 31), ("w1", 30), ("new", -1));

        var plan = seats[0].Plan;
        Assert.Equal(2, plan.Generation);
        Assert.Equal(0, plan.StateSource);
        Assert.Equal(31, plan.StateStep);
        Assert.All(seats, s => Assert.Same(plan, s.Plan));
        Assert.Equal(0, Finished(run, 2).StepsRedone);
    }

    [Fact]
    public async Task Among_survivors_with_the_same_step_the_lowest_rank_serves()
    {
        var run = Start(worldSize: 3);
        await Form(run, ("w0", -1), ("w1", -1), ("w2", -1));
        run.HeartbeatBroken("w0", 1, "gone");

        var seats = await Form(run, ("new", -1), ("w1", 12), ("w2", 12));

        Assert.Equal(1, seats[0].Plan.StateSource);
        Assert.Equal(12, seats[0].Plan.StateStep);
    }

    [Fact]
    public async Task A_checkpoint_newer_than_every_kept_state_wins()
    {
        var run = Start(worldSize: 2);
        await Form(run, ("w0", -1), ("w1", -1));
        run.ReportCheckpoint(new CheckpointReport(1, 40, "/ckpt/step-000000040"));
        Beat(run, 1, ("w0", 40), ("w1", 39));
        run.HeartbeatBroken("w0", 1, "gone");

        // Rank 0 committed step 40 and died; w1 was cut off before it could apply step 40 and kept 39.
        var seats = await Form(run, ("new", -1), ("w1", 39));

        Assert.Equal(-1, seats[0].Plan.StateSource);
        Assert.Equal("/ckpt/step-000000040", seats[0].Plan.ResumeFrom);
        Assert.Equal(0, Finished(run, 2).StepsRedone);
    }

    [Fact]
    public async Task With_no_survivor_state_the_run_falls_back_to_the_checkpoint_and_counts_every_step_since()
    {
        var run = Start(worldSize: 2);
        await Form(run, ("w0", -1), ("w1", -1));
        run.ReportCheckpoint(new CheckpointReport(1, 100, "/ckpt/step-000000100"));
        Beat(run, 1, ("w0", 137), ("w1", 137));
        run.HeartbeatBroken("w0", 1, "gone");
        run.HeartbeatBroken("w1", 1, "gone");

        var seats = await Form(run, ("a", -1), ("b", -1));

        Assert.Equal(-1, seats[0].Plan.StateSource);
        Assert.Equal("/ckpt/step-000000100", seats[0].Plan.ResumeFrom);
        Assert.Equal(37, Finished(run, 2).StepsRedone);
    }

    [Fact]
    public async Task A_first_generation_resuming_a_checkpoint_redoes_nothing_and_the_seed_is_used_when_there_is_none()
    {
        var resumed = Start(worldSize: 2, resumeFrom: "/ckpt/run/step-000000050");
        var seats = await Form(resumed, ("w0", -1), ("w1", -1));
        Assert.Equal(-1, seats[0].Plan.StateSource);
        Assert.Equal("/ckpt/run/step-000000050", seats[0].Plan.ResumeFrom);
        Assert.Equal(0, Finished(resumed, 1).StepsRedone);

        var fresh = Start(worldSize: 2);
        seats = await Form(fresh, ("w0", -1), ("w1", -1));
        Assert.Null(seats[0].Plan.ResumeFrom);
        Assert.Equal(-1, seats[0].Plan.StateSource);
    }

    private Membership Start(int worldSize, string? resumeFrom = null)
    {
        var run = new Membership(new RunSettings
        {
            RunId = "test",
            Secret = "secret",
            Config = new RunConfig { Workers = worldSize, MaxRestarts = 5 },
            RunDirectory = "unused",
            CheckpointRoot = "unused",
            ResumeFrom = resumeFrom,
        }, NullLogger.Instance, _time);
        _runs.Add(run);
        return run;
    }

    /// <summary>Each worker joins asking for its position as its rank, offering the steps it kept (-1: none).</summary>
    private static async Task<Seated[]> Form(Membership run, params (string Id, long Held)[] workers)
    {
        var joins = workers.Select((w, r) => run.JoinAsync(
            new WorkerIdentity(w.Id, "localhost", 1000 + r, $"http://127.0.0.1:{40000 + r}/", r, w.Held), CancellationToken.None)).ToArray();
        return [.. (await Task.WhenAll(joins).WaitAsync(Deadline)).Select(r => Assert.IsType<Seated>(r))];
    }

    private static void Beat(Membership run, long generation, params (string Id, long Step)[] beats)
    {
        foreach (var (id, step) in beats)
        {
            run.AttachHeartbeat(new MemberBeat(id, generation, step, "step"));
        }
    }

    /// <summary>Every rank of the generation finishes; the run's summary.</summary>
    private static RunSummary Finished(Membership run, long generation)
    {
        int n = run.Settings.WorldSize;
        for (int r = 0; r < n; r++)
        {
            run.Finish(new FinishReport(generation, r, "same",
                r == 0 ? new RunSummary { Model = "clip-micro", Dataset = "synthetic" }.ToJson() : null, 1));
        }

        var outcome = run.Completion.WaitAsync(Deadline).GetAwaiter().GetResult();
        return outcome.Summary ?? throw new Xunit.Sdk.XunitException($"the run failed: {outcome.Error}");
    }
}

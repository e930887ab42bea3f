using DistClip.Config;
using DistClip.Coordinator.Runs;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// The membership's watchdog and failure reports (part of <see cref="MembershipTests"/>, which holds
/// the fixture and helpers): stalled ranks, collective timeouts, errors a worker reports, repeats.
/// </summary>
public sealed partial class MembershipTests
{
    [Fact]
    public async Task A_rank_that_stops_progressing_while_the_others_wait_on_it_is_lost_as_stalled_and_the_waiting_ranks_are_not()
    {
        var run = Start(worldSize: 3);
        await Form(run, "w0", "w1", "w2");
        var aborted = Next<string>(h => run.GenerationAborted += h);
        var lost = Every<LostMember>(h => run.MemberLost += h);

        // Every rank beats on time, but none moves: ranks 0 and 2 wait in the exchange of step 6 for
        // rank 1, still in its forward pass.
        MemberBeat[] still = [Beat("w0", 1, 5, "exchange"), Beat("w1", 1, 5, "forward"), Beat("w2", 1, 5, "exchange")];
        Hold(run, StepTimeoutSeconds, _ => still, aborted);
        Assert.False(aborted.IsCompleted, "lost at the step timeout itself, not past it");
        Hold(run, 1, _ => still, aborted);

        string why = await aborted.WaitAsync(Deadline);
        Assert.Contains("rank 1 (worker w1 on localhost, step 5, phase forward) was lost: stalled: no progress for", why);
        Assert.Contains("while the other ranks waited on it (step timeout 30 s)", why);
        Assert.DoesNotContain("rank 0", why);
        Assert.DoesNotContain("rank 2", why);
        Assert.Equal(["w1"], lost.Select(l => l.Worker.WorkerId));
        Assert.Equal(MembershipState.Forming, run.State);
    }

    [Fact]
    public async Task A_stall_at_the_same_step_and_phase_after_a_restart_ends_the_run_naming_it()
    {
        var run = Start(worldSize: 2, maxRestarts: 5);
        await Form(run, "w0", "w1");
        var aborted = Next<string>(h => run.GenerationAborted += h);
        MemberBeat[] Stuck(long generation) => [Beat("w0", generation, 5, "exchange"), Beat("w1", generation, 5, "data")];
        Hold(run, StepTimeoutSeconds + 1, _ => Stuck(1), aborted);
        Assert.Contains("rank 1 (worker w1 on localhost, step 5, phase data) was lost: stalled", await aborted.WaitAsync(Deadline));

        // The replacement blocks on the same step in the same phase (the same sample, say).
        await Form(run, ["w0", "w1b"], generation: 2);
        MemberBeat[] again = [Beat("w0", 2, 5, "exchange"), Beat("w1b", 2, 5, "data")];
        Hold(run, StepTimeoutSeconds + 1, _ => again, run.Completion);

        var outcome = await run.Completion.WaitAsync(Deadline);
        Assert.Equal("rank 1 (worker w1b on localhost) stalled at step 5 in phase data as a rank did in generation 1, which a restart did not fix", outcome.Error);
        Assert.Equal(1, outcome.Restarts);
    }

    [Fact]
    public async Task A_rank_that_keeps_progressing_keeps_the_generation_alive_however_long_the_others_wait()
    {
        var run = Start(worldSize: 2);
        await Form(run, "w0", "w1");
        var aborted = Next<string>(h => run.GenerationAborted += h);

        // Rank 0 waits in the all-reduce for minutes while rank 1 checkpoints, moving a phase every 20 s.
        Hold(run, 5 * StepTimeoutSeconds, t => [Beat("w0", 1, 9, "reduce"), Beat("w1", 1, 9, t / 20 % 2 == 0 ? "checkpoint" : "evaluate")], aborted);

        Assert.False(aborted.IsCompleted, aborted.IsCompleted ? await aborted : "");
        Assert.Equal(MembershipState.Running, run.State);
    }

    [Fact]
    public async Task When_every_rank_waits_on_a_peer_the_one_that_has_waited_longest_is_lost()
    {
        var run = Start(worldSize: 3);
        await Form(run, "w0", "w1", "w2");
        var aborted = Next<string>(h => run.GenerationAborted += h);
        var lost = Every<LostMember>(h => run.MemberLost += h);

        // Rank 1 has waited in the exchange since t=0; ranks 0 and 2 arrived in theirs at t=4 and t=8.
        Hold(run, StepTimeoutSeconds + 10, t =>
        [
            Beat("w0", 1, 3, t < 4 ? "backward" : "reduce"), Beat("w1", 1, 3, "exchange"), Beat("w2", 1, 3, t < 8 ? "data" : "exchange"),
        ], aborted);

        string why = await aborted.WaitAsync(Deadline);
        Assert.Contains("rank 1 (worker w1 on localhost, step 3, phase exchange) was lost: stalled: no rank progressed for", why);
        Assert.Contains("each waiting on a peer; this one has waited longest", why);
        Assert.Equal(["w1"], lost.Select(l => l.Worker.WorkerId));
    }

    [Fact]
    public async Task Finished_ranks_are_left_out_of_the_watchdog_and_a_rank_stuck_after_they_finished_is_lost()
    {
        var run = Start(worldSize: 2);
        await Form(run, "w0", "w1");
        var aborted = Next<string>(h => run.GenerationAborted += h);
        var lost = Every<LostMember>(h => run.MemberLost += h);
        run.AttachHeartbeat(Beat("w1", 1, 10, "finished"));
        Finish(run, 1, rank: 1, peak: 0);

        // Rank 1 waits for the verdict without moving; rank 0 is still stepping: nothing is stalled.
        Hold(run, 2 * StepTimeoutSeconds, t => [Beat("w0", 1, 8 + t / 20, "forward"), Beat("w1", 1, 10, "finished")], aborted);
        Assert.False(aborted.IsCompleted, aborted.IsCompleted ? await aborted : "");

        // Rank 0 then hangs in its evaluation: it, not the finished rank 1 whose progress is older, is lost.
        Hold(run, StepTimeoutSeconds + 2, _ => [Beat("w0", 1, 10, "evaluate"), Beat("w1", 1, 10, "finished")], aborted);
        string why = await aborted.WaitAsync(Deadline);
        Assert.StartsWith("rank 0 (worker w0 on localhost, step 10, phase evaluate) was lost: stalled: no progress for", why);
        Assert.EndsWith(" s (step timeout 30 s)", why); // no other rank was waiting on it
        Assert.Equal(["w0"], lost.Select(l => l.Worker.WorkerId));
    }

    [Fact]
    public async Task A_collective_timeout_reported_by_a_rank_loses_at_once_the_rank_it_waited_on_and_not_the_reporter()
    {
        var run = Start(worldSize: 3);
        await Form(run, "w0", "w1", "w2");
        foreach (var beat in new[] { Beat("w0", 1, 5, "exchange"), Beat("w1", 1, 5, "data"), Beat("w2", 1, 5, "exchange") })
        {
            run.AttachHeartbeat(beat);
        }

        var aborted = Next<string>(h => run.GenerationAborted += h);
        var failures = Every<string>(h => run.WorkerFailed += h);
        var lost = Every<LostMember>(h => run.MemberLost += h);

        // Rank 0 gave up first; rank 1 is the one the ring waited on.
        run.ReportFailure(Failure("w0", 1, rank: 0, step: 5, "exchange", FailureKind.CollectiveTimeout, "CollectiveTimeoutException", "all-gather timed out after 20 s"));

        string why = await aborted.WaitAsync(Deadline);
        Assert.StartsWith("rank 1 (worker w1 on localhost, step 5, phase data) was lost: stalled: no progress for", why);
        Assert.Contains("rank 0's collective timed out waiting on it (CollectiveTimeoutException: all-gather timed out after 20 s)", why);
        Assert.Equal(["w1"], lost.Select(l => l.Worker.WorkerId));
        Assert.Equal(["rank 0 (worker w0, generation 1) at step 5 in phase exchange: a collective timed out: CollectiveTimeoutException: all-gather timed out after 20 s"], failures);

        // The others' reports of the same timeout come after the generation moved on: printed, nothing more.
        run.ReportFailure(Failure("w2", 1, rank: 2, step: 5, "exchange", FailureKind.CollectiveTimeout, "CollectiveTimeoutException", "all-gather timed out after 20 s"));
        Assert.Equal(1, run.Health().Restarts);
        var seats = await Seats(Join(run, "w0", 0), Join(run, "w2", 2), Join(run, "w1-replacement", 1));
        Assert.All(seats, s => Assert.Equal(2, s.Plan.Generation));
    }

    [Fact]
    public async Task An_error_a_worker_reports_loses_it_naming_the_cause_and_the_same_error_after_a_restart_ends_the_run()
    {
        var run = Start(worldSize: 2, maxRestarts: 5);
        await Form(run, "w0", "w1");
        var aborted = Next<string>(h => run.GenerationAborted += h);
        var failures = Every<string>(h => run.WorkerFailed += h);
        var lost = Every<LostMember>(h => run.MemberLost += h);

        run.ReportFailure(Failure("w1", 1, rank: 1, step: 2, "forward", FailureKind.Error, "InvalidOperationException", "boom"));

        Assert.Equal("rank 1 (worker w1 on localhost, step 2, phase forward) was lost: it failed: InvalidOperationException: boom", await aborted.WaitAsync(Deadline));
        Assert.Equal(["rank 1 (worker w1, generation 1) at step 2 in phase forward failed: InvalidOperationException: boom"], failures);
        Assert.Empty(lost); // it exits on its own: nothing to kill
        // Its exit, which the launcher sees next, is the same loss, not a second one.
        Assert.True(run.WorkerExited(new WorkerExit(Slot: 1, "localhost", Pid: 1001, ExitCode: 1)));
        Assert.Equal(1, run.Health().Restarts);

        await Form(run, "w0", "w1b", generation: 2);
        run.ReportFailure(Failure("w1b", 2, rank: 1, step: 2, "forward", FailureKind.Error, "InvalidOperationException", "boom"));

        var outcome = await run.Completion.WaitAsync(Deadline);
        Assert.Equal("rank 1 (worker w1b, generation 2) at step 2 in phase forward failed with the same error as in generation 1, which a restart did not fix: InvalidOperationException: boom", outcome.Error);
        Assert.Equal(1, outcome.Restarts);
    }

    [Fact]
    public async Task The_same_error_on_two_ranks_of_one_generation_is_not_a_repeat()
    {
        var run = Start(worldSize: 2, maxRestarts: 5);
        await Form(run, "w0", "w1");

        run.ReportFailure(Failure("w0", 1, rank: 0, step: 4, "data", FailureKind.Error, "IOException", "disk on fire"));
        run.ReportFailure(Failure("w1", 1, rank: 1, step: 4, "data", FailureKind.Error, "IOException", "disk on fire"));

        Assert.False(run.Completion.IsCompleted, run.Completion.IsCompleted ? (await run.Completion).Error : "");
        Assert.Equal(MembershipState.Forming, run.State);
    }

    [Fact]
    public async Task A_fatal_error_ends_the_run_at_once_naming_it_and_the_others_are_told_to_stop()
    {
        var run = Start(worldSize: 2, maxRestarts: 3);
        await Form(run, "w0", "w1");
        var commands = run.AttachHeartbeat(Beat("w0", 1))!;

        run.ReportFailure(Failure("w1", 1, rank: 1, step: 0, "joining", FailureKind.Fatal, "ConfigException", "device: cuda was requested but libtorch sees no CUDA device here"));

        var outcome = await run.Completion.WaitAsync(Deadline);
        Assert.Equal("rank 1 (worker w1, generation 1) at step 0 in phase joining failed with an error a restart cannot fix: ConfigException: device: cuda was requested but libtorch sees no CUDA device here", outcome.Error);
        Assert.Equal(0, outcome.Restarts);
        Assert.Equal(MemberCommandKind.Stop, Read(commands).Kind);
        // The failed worker exits on its own; only rank 0 is left to hear.
        run.HeartbeatClosed("w0");
        Assert.Equal(MembershipState.Ended, run.State);
    }
}

using System.Threading.Channels;
using DistClip.Config;
using DistClip.Control.V1;
using DistClip.Coordinator.Runs;
using DistClip.Coordinator.Services;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// The run's membership in process: no gRPC, no worker processes, a fake clock. Nothing sleeps: a
/// test advances the clock and awaits the event it expects, with a deadline.
/// </summary>
public sealed class MembershipTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private const int StepTimeoutSeconds = 30;
    private readonly FakeTimeProvider _time = new();
    private readonly List<Membership> _runs = [];
    private int _held;

    public void Dispose() => _runs.ForEach(r => r.Dispose());

    [Fact]
    public async Task A_generation_forms_once_every_rank_has_joined_each_worker_taking_the_rank_it_asked_for()
    {
        var run = Start(worldSize: 3);
        var a = Join(run, "a", preferredRank: 2);
        var b = Join(run, "b", preferredRank: -1);
        Assert.Equal(MembershipState.Forming, run.State);
        Assert.False(a.IsCompleted, "a seat before every rank has joined");

        var c = Join(run, "c", preferredRank: -1);
        var seats = await Seats(a, b, c);

        Assert.Equal(MembershipState.Running, run.State);
        Assert.All(seats, s => Assert.Equal(1, s.Plan.Generation));
        // a asked for rank 2; b and c fill the gaps in join order.
        Assert.Equal([2, 0, 1], seats.Select(s => s.Rank));
        Assert.Equal(["b", "c", "a"], seats[0].Plan.Ranks.Select(w => w.WorkerId));
        Assert.Null(seats[0].Plan.ResumeFrom);
    }

    [Fact]
    public async Task A_member_silent_past_the_heartbeat_timeout_is_lost_and_the_others_are_told_to_abort()
    {
        var run = Start(worldSize: 2);
        await Form(run, "w0", "w1");
        var commands = run.AttachHeartbeat(Beat("w0", 1))!;
        run.AttachHeartbeat(Beat("w1", 1, step: 7));
        var aborted = Next<string>(h => run.GenerationAborted += h);
        var killed = Next<LostMember>(h => run.MemberLost += h);

        // w0 beats every interval; w1 has gone silent. Ticks come from the membership's own timer.
        for (int i = 0; i < 15 && !aborted.IsCompleted; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            run.Heartbeat(Beat("w0", 1));
        }

        Assert.False(aborted.IsCompleted, "lost at the timeout itself, not past it");
        _time.Advance(TimeSpan.FromSeconds(1));
        string why = await aborted.WaitAsync(Deadline);

        Assert.Contains("rank 1 (worker w1 on localhost, step 7, phase step) was lost: no heartbeat for", why);
        // Its process may still be there (stopped): its launcher is told to kill it.
        var lost = await killed.WaitAsync(Deadline);
        Assert.Equal(("w1", 1L), (lost.Worker.WorkerId, lost.Loss));
        Assert.Equal(MemberCommandKind.Abort, Read(commands).Kind);
        Assert.Equal(MembershipState.Forming, run.State);
        Assert.Equal(1, run.Health().Restarts);
    }

    [Fact]
    public async Task A_lost_worker_aborts_its_generation_and_the_survivors_and_a_replacement_form_the_next_from_the_latest_checkpoint()
    {
        var run = Start(worldSize: 3);
        await Form(run, "w0", "w1", "w2");
        run.ReportCheckpoint(new CheckpointReport(1, 4, "/ckpt/step-4"));
        var aborted = Next<string>(h => run.GenerationAborted += h);

        run.HeartbeatBroken("w1", 1, "connection reset");
        Assert.Contains("rank 1 (worker w1", await aborted.WaitAsync(Deadline));
        // The launcher then sees w1's process exit: the same loss, not a second one; it starts a replacement.
        Assert.True(run.WorkerExited(new WorkerExit(Slot: 1, "localhost", Pid: 1001, ExitCode: 137)));
        Assert.Equal(1, run.Health().Restarts);

        var seats = await Seats(Join(run, "w0", 0), Join(run, "w2", 2), Join(run, "w1-replacement", 1));

        Assert.Equal(MembershipState.Running, run.State);
        Assert.All(seats, s => Assert.Equal(2, s.Plan.Generation));
        Assert.Equal(["w0", "w1-replacement", "w2"], seats[0].Plan.Ranks.Select(w => w.WorkerId));
        Assert.Equal("/ckpt/step-4", seats[0].Plan.ResumeFrom);
        // A report of the aborted generation no longer counts.
        var progress = Next<ProgressReport>(h => run.ProgressReported += h);
        run.ReportProgress(new ProgressReport(1, 5, 10, 1.0, 1e-3, 14.3, 32));
        run.ReportProgress(new ProgressReport(2, 5, 10, 0.9, 1e-3, 14.3, 32));
        Assert.Equal(2, (await progress.WaitAsync(Deadline)).Generation);
    }

    [Fact]
    public async Task With_max_restarts_1_the_second_loss_fails_the_run_and_counts_one_restart()
    {
        var run = Start(worldSize: 2, maxRestarts: 1);
        await Form(run, "w0", "w1");
        run.HeartbeatBroken("w1", 1, "connection reset");
        Assert.Equal(MembershipState.Forming, run.State);

        await Form(run, "w0", "w1b", generation: 2);
        var commands = run.AttachHeartbeat(Beat("w0", 2))!;
        run.WorkerExited(new WorkerExit(Slot: 1, "localhost", Pid: 1001, ExitCode: 1));
        var outcome = await run.Completion.WaitAsync(Deadline);

        Assert.False(outcome.Succeeded);
        Assert.StartsWith("giving up after 1 restart(s): rank 1 (worker w1b", outcome.Error);
        Assert.Contains("its process 1001 on localhost exited with status 1", outcome.Error);
        Assert.Equal(1, outcome.Restarts);
        Assert.Equal(MemberCommandKind.Abort, Read(commands).Kind);
        Assert.False(run.WorkerExited(new WorkerExit(Slot: 0, "localhost", Pid: 1000, ExitCode: 1)), "a replacement after the run ended");
    }

    [Fact]
    public async Task A_worker_exiting_while_it_joins_counts_as_a_restart_and_its_join_is_cancelled()
    {
        var run = Start(worldSize: 2);
        var join = Join(run, "w0", 0);

        Assert.True(run.WorkerExited(new WorkerExit(Slot: 0, "localhost", Pid: 1000, ExitCode: 1)));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => join.WaitAsync(Deadline));
        Assert.Equal(1, run.Health().Restarts);
        Assert.Equal(0, run.Health().WorkersUp);
    }

    [Fact]
    public async Task Stragglers_of_an_aborted_generation_hear_that_the_run_ended_when_they_join_again()
    {
        var run = Start(worldSize: 3);
        await Form(run, "w0", "w1", "w2");
        run.HeartbeatBroken("w2", 1, "connection reset");
        var waiting = Join(run, "w0", 0);

        run.Fail("interrupted");

        Assert.IsType<RunOver>(await waiting.WaitAsync(Deadline));
        Assert.Equal("interrupted", (await run.Completion.WaitAsync(Deadline)).Error);
        // w1 survived the abort but has not joined again yet: the run is not done telling.
        Assert.Equal(MembershipState.Ending, run.State);
        var told = run.WaitUntilWorkersToldAsync(TimeSpan.FromMinutes(1));
        Assert.False(told.IsCompleted);

        Assert.IsType<RunOver>(await Join(run, "w1", 1).WaitAsync(Deadline));
        await told.WaitAsync(Deadline);
        Assert.Equal(MembershipState.Ended, run.State);
    }

    [Fact]
    public async Task Members_are_told_to_stop_when_the_run_ends_and_the_run_is_done_once_each_closed_its_stream()
    {
        var run = Start(worldSize: 2);
        await Form(run, "w0", "w1");
        var commands = new[] { run.AttachHeartbeat(Beat("w0", 1))!, run.AttachHeartbeat(Beat("w1", 1))! };

        Finish(run, 1, rank: 0, peak: 0);
        Finish(run, 1, rank: 1, peak: 0);

        Assert.True((await run.Completion.WaitAsync(Deadline)).Succeeded);
        Assert.All(commands, c => Assert.Equal(new MemberCommand(MemberCommandKind.Stop, 1, "run finished"), Read(c)));
        run.HeartbeatClosed("w0");
        Assert.Equal(MembershipState.Ending, run.State);
        run.HeartbeatClosed("w1");
        Assert.Equal(MembershipState.Ended, run.State);
    }

    [Fact]
    public async Task A_clean_leave_is_not_a_loss_but_a_broken_stream_is()
    {
        var run = Start(worldSize: 2);
        await Form(run, "w0", "w1");
        var aborted = Next<string>(h => run.GenerationAborted += h);

        run.HeartbeatClosed("w1");
        Assert.Equal(MembershipState.Running, run.State);
        Assert.Equal(0, run.Health().Restarts);

        run.HeartbeatBroken("w1", 1, "connection reset");
        Assert.Contains("its heartbeat stream broke (connection reset)", await aborted.WaitAsync(Deadline));
        Assert.Equal(1, run.Health().Restarts);
    }

    [Fact]
    public async Task A_finished_members_broken_stream_is_not_a_loss()
    {
        var run = Start(worldSize: 2);
        await Form(run, "w0", "w1");
        Finish(run, 1, rank: 1, peak: 0);

        run.HeartbeatBroken("w1", 1, "connection reset");

        Assert.Equal(MembershipState.Running, run.State);
        Assert.Equal(0, run.Health().Restarts);
    }

    [Fact]
    public async Task A_generation_that_does_not_form_within_the_join_timeout_fails_the_run()
    {
        var run = Start(worldSize: 2);
        var join = Join(run, "w0", 0);

        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.False(run.Completion.IsCompleted, "failed at the timeout itself, not past it");
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal("only 1 of 2 workers joined within 300 s", (await run.Completion.WaitAsync(Deadline)).Error);
        Assert.IsType<RunOver>(await join.WaitAsync(Deadline));
        Assert.Equal(MembershipState.Ended, run.State);
    }

    [Fact]
    public async Task Ranks_that_end_with_different_parameters_fail_the_run_naming_each_hash()
    {
        var run = Start(worldSize: 2);
        await Form(run, "w0", "w1");

        Finish(run, 1, rank: 0, peak: 0, hash: "aaaaaaaaaaaaaaaa");
        Finish(run, 1, rank: 1, peak: 0, hash: "bbbbbbbbbbbbbbbb");

        var outcome = await run.Completion.WaitAsync(Deadline);
        Assert.Equal("replicas diverged: ranks ended with different parameters (rank 0: aaaaaaaaaaaa, rank 1: bbbbbbbbbbbb)", outcome.Error);
    }

    [Fact]
    public async Task The_summary_lists_the_peak_rss_each_rank_reported_by_rank_whatever_order_they_finish_in()
    {
        var run = Start(worldSize: 3);
        // Joined out of rank order; each asks for its rank.
        await Seats(Join(run, "w2", 2), Join(run, "w0", 0), Join(run, "w1", 1));

        Finish(run, 1, rank: 2, peak: 300_000_000);
        Finish(run, 1, rank: 0, peak: 100_000_000);
        Finish(run, 1, rank: 1, peak: 0); // a worker that could not read its peak
        var outcome = await run.Completion.WaitAsync(Deadline);

        Assert.True(outcome.Succeeded, outcome.Error);
        Assert.Equal([100_000_000L, 0L, 300_000_000L], outcome.Summary!.PeakRssBytes!);
        Assert.Equal(300_000_000L, outcome.Summary.PeakRssBytesMax);
        Assert.Equal(3, outcome.Summary.WorldSize);
    }

    [Fact]
    public async Task Events_are_raised_outside_the_membership_lock()
    {
        var run = Start(worldSize: 2);
        await Form(run, "w0", "w1");
        // A handler that needs the membership from another thread would deadlock if it ran under the lock.
        var seen = Next<MembershipState>(h => run.GenerationAborted += _ => h(Task.Run(() => run.State).Wait(Deadline) ? run.State : throw new TimeoutException("the handler ran under the lock")));

        run.HeartbeatBroken("w0", 1, "connection reset");

        Assert.Equal(MembershipState.Forming, await seen.WaitAsync(Deadline));
    }

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

    [Fact]
    public void A_seat_maps_to_an_assignment_with_its_peers_by_rank_and_the_run_over_to_a_stop()
    {
        var settings = Settings(worldSize: 2, maxRestarts: 3) with
        {
            Config = new RunConfig { Workers = 2, CheckpointEvery = 7, Training = new TrainOptions { GlobalBatch = 64, Loss = LossKind.Siglip, Dataset = "synthetic:1000" } },
        };
        var plan = new GenerationPlan(4, [Worker("w0", 0), Worker("w1", 1)], "/ckpt/step-8");

        var identity = new RankIdentity(DistClip.Control.RankTokens.Derive("secret", [1, 2, 3], "test"), NullLogger.Instance, _time);

        var assignment = RunControlService.AssignmentOf(new Seated(plan, 1), settings, identity);

        // The run's settings travel typed, every one of them.
        Assert.Equal(settings.Config, DistClip.Control.RunConfigValuesMapping.FromMessage(assignment.Config));

        Assert.Equal((4L, 1, 2, "/ckpt/step-8"), (assignment.Generation, assignment.Rank, assignment.WorldSize, assignment.ResumeFrom));
        Assert.Equal(["http://127.0.0.1:40000/", "http://127.0.0.1:40001/"], assignment.Peers.Select(p => p.CollectiveEndpoint));
        Assert.Equal(1000, assignment.HeartbeatIntervalMs);
        // Its own token, and the one its left neighbour (rank 0) presents on the ring, both of generation 4.
        Assert.Equal(identity.TokenOf(4, 1), assignment.RankToken.ToByteArray());
        Assert.Equal(identity.TokenOf(4, 0), assignment.LeftRankToken.ToByteArray());
        Assert.True(RunControlService.AssignmentOf(RunOver.Instance, settings, identity).Stop);
        Assert.Equal("checkpoint", RunControlService.PhaseName(HeartbeatRequest.Types.Phase.Checkpoint));
        Assert.Equal(new FailureReport("w1", 4, 1, 7, "step", FailureKind.CollectiveTimeout, "CollectiveTimeoutException", "late"),
            RunControlService.FailureOf(new WorkerFailure
            {
                WorkerId = "w1",
                Generation = 4,
                Rank = 1,
                Step = 7,
                Phase = HeartbeatRequest.Types.Phase.Step,
                Kind = WorkerFailure.Types.Kind.CollectiveTimeout,
                ExceptionType = "CollectiveTimeoutException",
                Message = "late",
            }));
    }

    private Membership Start(int worldSize, int maxRestarts = 3)
    {
        var run = new Membership(Settings(worldSize, maxRestarts), NullLogger.Instance, _time);
        _runs.Add(run);
        return run;
    }

    private static RunSettings Settings(int worldSize, int maxRestarts) => new()
    {
        RunId = "test",
        Secret = "secret",
        Config = new RunConfig { Workers = worldSize, MaxRestarts = maxRestarts, StepTimeoutSeconds = StepTimeoutSeconds },
        RunDirectory = "unused",
        CheckpointRoot = "unused",
    };

    /// <summary>Every worker joins asking for its position in <paramref name="workers"/> as its rank; returns once the generation formed.</summary>
    private static async Task Form(Membership run, params string[] workers) => await Form(run, workers, generation: 1);

    private static async Task Form(Membership run, string w0, string w1, long generation) => await Form(run, [w0, w1], generation);

    private static async Task Form(Membership run, string[] workers, long generation)
    {
        var seats = await Seats([.. workers.Select((w, r) => Join(run, w, r))]);
        Assert.All(seats, s => Assert.Equal(generation, s.Plan.Generation));
    }

    private static async Task<Seated[]> Seats(params Task<JoinReply>[] joins) =>
        [.. (await Task.WhenAll(joins).WaitAsync(Deadline)).Select(r => Assert.IsType<Seated>(r))];

    private static WorkerIdentity Worker(string id, int preferredRank) =>
        new(id, "localhost", 1000 + Math.Max(preferredRank, 0), $"http://127.0.0.1:{40000 + Math.Max(preferredRank, 0)}/", preferredRank);

    private static Task<JoinReply> Join(Membership run, string id, int preferredRank) => run.JoinAsync(Worker(id, preferredRank), CancellationToken.None);

    private static MemberBeat Beat(string id, long generation, long step = 0, string phase = "step") => new(id, generation, step, phase);

    private static FailureReport Failure(string id, long generation, int rank, long step, string phase, FailureKind kind, string type, string message) =>
        new(id, generation, rank, step, phase, kind, type, message);

    /// <summary>
    /// Advances the clock a second at a time for <paramref name="seconds"/> seconds; at every second
    /// (counted from 0) each member beats as <paramref name="beats"/> says. Stops early once <paramref name="until"/> completed.
    /// </summary>
    private void Hold(Membership run, int seconds, Func<int, MemberBeat[]> beats, Task until)
    {
        for (int t = 0; t < seconds && !until.IsCompleted; t++)
        {
            foreach (var beat in beats(_held + t))
            {
                run.Heartbeat(beat);
            }

            _time.Advance(TimeSpan.FromSeconds(1));
        }

        _held += seconds;
    }

    private static void Finish(Membership run, long generation, int rank, long peak, string hash = "same-on-every-rank") =>
        run.Finish(new FinishReport(generation, rank, hash,
            rank == 0 ? new RunSummary { Model = "clip-micro", Dataset = "synthetic-train-64" }.ToJson() : null, peak));

    private static MemberCommand Read(ChannelReader<MemberCommand> commands) =>
        commands.TryRead(out var command) ? command : throw new Xunit.Sdk.XunitException("expected a command on the member's channel; there was none");

    /// <summary>Every value an event hands its handlers, as they come.</summary>
    private static List<T> Every<T>(Action<Action<T>> subscribe)
    {
        var all = new List<T>();
        subscribe(v =>
        {
            lock (all)
            {
                all.Add(v);
            }
        });
        return all;
    }

    /// <summary>The next value an event hands its handlers.</summary>
    private static Task<T> Next<T>(Action<Action<T>> subscribe)
    {
        var next = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        subscribe(v => next.TrySetResult(v));
        return next.Task;
    }
}

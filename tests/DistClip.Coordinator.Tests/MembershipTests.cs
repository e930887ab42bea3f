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
public sealed partial class MembershipTests : IDisposable
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

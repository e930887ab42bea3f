using DistClip.Coordinator.Runs;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// How a run ends and who has heard (part of <see cref="MembershipTests"/>, which holds the fixture
/// and helpers; the code is <see cref="Membership"/>'s Ending part): members are sent Stop,
/// stragglers and survivors of an abort hear it when they join again.
/// </summary>
public sealed partial class MembershipTests
{
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

    /// <summary>
    /// A survivor of the abort that ended the run closes its heartbeat stream on its way to joining
    /// again; that close is not hearing the run is over. Counted as such, the coordinator exited
    /// before the survivor's join, and the survivor exited 4 (coordinator lost).
    /// </summary>
    [Fact]
    public async Task A_survivor_of_the_last_abort_is_told_at_its_join_not_when_it_closes_its_heartbeat()
    {
        var run = Start(worldSize: 2, maxRestarts: 0);
        await Form(run, "w0", "w1");
        var commands = run.AttachHeartbeat(Beat("w0", 1))!;
        run.AttachHeartbeat(Beat("w1", 1));

        run.HeartbeatBroken("w1", 1, "connection reset"); // one loss too many: the run ends

        Assert.False((await run.Completion.WaitAsync(Deadline)).Succeeded);
        Assert.Equal(MemberCommandKind.Abort, Read(commands).Kind);
        var told = run.WaitUntilWorkersToldAsync(TimeSpan.FromMinutes(1));
        run.HeartbeatClosed("w0");
        Assert.False(told.IsCompleted, "w0 closed the stream of its aborted generation; it has not heard that the run is over");
        Assert.Equal(MembershipState.Ending, run.State);

        Assert.IsType<RunOver>(await Join(run, "w0", 0).WaitAsync(Deadline));
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
}

using System.Threading.Channels;
using DistClip.Control;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Runs;

/// <summary>
/// The run's membership as a state machine (<see cref="MembershipState"/>), independent of gRPC:
/// <list type="bullet">
/// <item>Forming: workers join; when every rank is present a generation forms (Running).</item>
/// <item>Running: heartbeats keep members alive and say how far each is (the progress watchdog,
/// Membership.Watchdog.cs, loses a rank that holds the others up); a lost member aborts the
/// generation (Forming again: the survivors join again, a replacement joins, the next generation
/// resumes from the latest committed checkpoint), until more than <see cref="RunSettings.MaxRestarts"/> are lost.</item>
/// <item>Ending: the outcome is decided (every rank finished, a failure, too many losses, a join
/// timeout); workers still to hear it are told by a stop command or a stop reply to their join.</item>
/// <item>Ended: every worker of the last generation has been told.</item>
/// </list>
/// Every transition runs under one lock; the events it raises are queued there and raised once the
/// lock is released, so a handler never runs inside the membership. Time comes from the injected
/// <see cref="TimeProvider"/>: a timer calls <see cref="Tick"/> every half heartbeat interval.
/// </summary>
public sealed partial class Membership : IDisposable
{
    private readonly RunSettings _settings;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ITimer _monitor;
    private readonly Lock _lock = new();

    // Under the lock: what the transition has to tell the outside world, raised after the lock is released.
    private readonly List<Action> _events = [];
    private readonly Dictionary<string, Joiner> _joining = [];
    private readonly LauncherMatch _launchers = new();
    private readonly TaskCompletionSource<RunOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private MembershipState _state = MembershipState.Forming;
    private long _generation;
    private int _restarts;
    private long _losses;
    private string? _latestCheckpoint;
    private DateTimeOffset _formingSince;

    // The current generation's members, by rank: while Running, and after the run ends the last
    // generation's (to be told). Empty while Forming.
    private Member[] _members = [];

    // The members that survived the last aborted generation: they join again (or must hear the run is over).
    private string[] _survivors = [];

    public Membership(RunSettings settings, ILogger logger, TimeProvider? time = null)
    {
        _settings = settings;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _latestCheckpoint = settings.ResumeFrom;
        _latestCheckpointStep = StepOfCheckpoint(settings.ResumeFrom);
        _formingSince = _time.GetUtcNow();
        Identity = new RankIdentity(RankTokens.ForRun(settings.Secret, settings.RunId), logger, _time);
        var period = settings.HeartbeatInterval / 2;
        _monitor = _time.CreateTimer(_ => Tick(), null, period, period);
    }

    public RunSettings Settings => _settings;

    /// <summary>Issues and checks the members' rank tokens (a fresh key per membership, so per coordinator process).</summary>
    public RankIdentity Identity { get; }

    /// <summary>Completes when the run has succeeded or failed for good (on entering Ending).</summary>
    public Task<RunOutcome> Completion => _outcome.Task;

    public MembershipState State => Locked(() => _state);

    public long Generation => Locked(() => _generation);

    /// <summary>Raised for every step rank 0 reports in the current generation.</summary>
    public event Action<ProgressReport>? ProgressReported;

    /// <summary>Raised when rank 0 reports a committed checkpoint.</summary>
    public event Action<CheckpointReport>? CheckpointReported;

    /// <summary>Raised when a generation aborts because a member was lost (with what was lost, and why).</summary>
    public event Action<string>? GenerationAborted;

    /// <summary>
    /// Raised for each member declared lost, whatever the reason: a process that is still there
    /// (stopped, stuck, cut off) must be killed by whoever started it, so that its exit is seen and a
    /// replacement starts at once.
    /// </summary>
    public event Action<LostMember>? MemberLost;

    /// <summary>How many members the run has lost so far (see <see cref="LostMember.Loss"/>).</summary>
    public long Losses => Locked(() => _losses);

    private bool IsOver => _state is MembershipState.Ending or MembershipState.Ended;

    /// <summary>Waits for a seat in the next generation (or for the news that the run is over).</summary>
    public async Task<JoinReply> JoinAsync(WorkerIdentity worker, CancellationToken ct)
    {
        var joiner = Transition<Joiner?>(() =>
        {
            if (IsOver)
            {
                Told(worker.WorkerId);
                return null;
            }

            if (_state == MembershipState.Forming && _joining.Count == 0)
            {
                _formingSince = _time.GetUtcNow();
            }

            var added = new Joiner(worker, _joining.Count);
            _joining[worker.WorkerId] = added; // a re-join of the same worker replaces its old entry
            LogJoined(_logger, worker.WorkerId, worker.Host, _joining.Count, _settings.WorldSize);
            FormIfComplete();
            return added;
        });
        if (joiner is null)
        {
            return RunOver.Instance;
        }

        using var registration = ct.Register(() => joiner.Reply.TrySetCanceled(ct));
        try
        {
            return await joiner.Reply.Task.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Transition(() =>
            {
                if (_joining.TryGetValue(worker.WorkerId, out var current) && current == joiner)
                {
                    _joining.Remove(worker.WorkerId);
                }
            });
            throw;
        }
    }

    /// <summary>Opens a member's command channel for its generation; null when it is not a current member.</summary>
    public ChannelReader<MemberCommand>? AttachHeartbeat(MemberBeat first) => Transition(() =>
    {
        var member = Find(first.WorkerId, first.Generation);
        member?.Beat(first, _time.GetUtcNow());
        return member?.Commands.Reader;
    });

    public void Heartbeat(MemberBeat beat) => Transition(() => Find(beat.WorkerId, beat.Generation)?.Beat(beat, _time.GetUtcNow()));

    /// <summary>A member's heartbeat stream broke: its process or its link is gone (a finished member's is not news).</summary>
    public void HeartbeatBroken(string workerId, long generation, string why) => Transition(() =>
    {
        var member = IsOver ? null : Find(workerId, generation);
        if (member is not null && !member.Finished)
        {
            Lose(member, $"its heartbeat stream broke ({why})");
        }
    });

    /// <summary>A launcher saw a worker process exit before the run ended. Returns whether to start a replacement.</summary>
    public bool WorkerExited(WorkerExit exit) => Transition(() =>
    {
        if (IsOver)
        {
            return false;
        }

        foreach (var (id, joiner) in _joining.Where(j => LauncherMatch.IsProcessOf(exit, j.Value.Worker)).ToList())
        {
            _joining.Remove(id);
            joiner.Reply.TrySetCanceled();
        }

        var member = _members.FirstOrDefault(m => LauncherMatch.IsProcessOf(exit, m.Worker));
        if (member is not null)
        {
            Lose(member, $"its process {exit.Pid} on {exit.Host} exited with status {exit.ExitCode}");
        }
        else if (!_launchers.AlreadyLost(exit))
        {
            // Lost while joining (at start-up or after an abort): a failure like any other. (An exit
            // already lost through its heartbeat aborted its generation and counted its restart then.)
            CountRestart($"worker slot {exit.Slot} (pid {exit.Pid} on {exit.Host}) exited with status {exit.ExitCode} while joining");
        }

        return !IsOver;
    });

    public void ReportProgress(ProgressReport progress) => Transition(() =>
    {
        if (progress.Generation == _generation)
        {
            Raise(ProgressReported, progress);
        }
    });

    /// <summary>
    /// Rank 0 committed a checkpoint: it becomes the run's latest, unless it is older than the latest
    /// already recorded (a rollback, which no honest rank 0 reports). Returns whether it was recorded.
    /// </summary>
    public bool ReportCheckpoint(CheckpointReport checkpoint) => Transition(() =>
    {
        if (_latestCheckpoint is not null && checkpoint.Step < _latestCheckpointStep)
        {
            return false;
        }

        _latestCheckpoint = checkpoint.Directory;
        _latestCheckpointStep = checkpoint.Step;
        LogCheckpoint(_logger, checkpoint.Step, checkpoint.Directory);
        Raise(CheckpointReported, checkpoint);
        return true;
    });

    /// <summary>Ends the run from outside (an interrupt, a launcher that cannot start workers).</summary>
    public void Fail(string error) => Transition(() => End(RunOutcome.Failure(error, _restarts)));

    /// <summary>
    /// Checks the deadlines: a member silent past the heartbeat timeout is lost; so is the member
    /// holding the others up when no member has progressed for the step timeout; a generation that
    /// takes longer than the join timeout to form fails the run.
    /// </summary>
    public void Tick() => Transition(() =>
    {
        var now = _time.GetUtcNow();
        if (_state == MembershipState.Running)
        {
            var silent = _members.FirstOrDefault(m => !m.Finished && now - m.LastSeen > _settings.HeartbeatTimeout);
            if (silent is not null)
            {
                Lose(silent, $"no heartbeat for {(now - silent.LastSeen).TotalSeconds:F1} s (timeout {_settings.HeartbeatTimeout.TotalSeconds:F0} s)");
            }
            else
            {
                LoseStalled(now);
            }
        }
        else if (_state == MembershipState.Forming && now - _formingSince > _settings.JoinTimeout)
        {
            End(RunOutcome.Failure(
                $"only {_joining.Count} of {_settings.WorldSize} workers joined within {_settings.JoinTimeout.TotalSeconds:F0} s", _restarts));
        }
    });

    /// <summary>Forming → Running once every rank has joined.</summary>
    private void FormIfComplete()
    {
        if (_state != MembershipState.Forming || _joining.Count != _settings.WorldSize)
        {
            return;
        }

        _generation++;
        int n = _settings.WorldSize;
        var byRank = new Joiner?[n];
        // A worker gets the rank it asked for (its launcher slot or Kubernetes index) when that rank
        // is free; the others fill the gaps in join order.
        foreach (var j in _joining.Values.OrderBy(j => j.Order))
        {
            int want = j.Worker.PreferredRank;
            if (want >= 0 && want < n && byRank[want] is null)
            {
                byRank[want] = j;
            }
        }

        var rest = new Queue<Joiner>(_joining.Values.Where(j => !byRank.Contains(j)).OrderBy(j => j.Order));
        for (int r = 0; r < n; r++)
        {
            byRank[r] ??= rest.Dequeue();
        }

        var now = _time.GetUtcNow();
        var plan = PlanStart(_generation, [.. byRank.Select(j => j!.Worker)]);
        _members = [.. byRank.Select(j => new Member(j!.Worker, now))];
        _survivors = [];
        _joining.Clear();
        _state = MembershipState.Running;
        for (int r = 0; r < n; r++)
        {
            byRank[r]!.Reply.TrySetResult(new Seated(plan, r));
        }

        string from = plan.StateSource >= 0 ? $"rank {plan.StateSource}'s kept state at step {plan.StateStep}" : _latestCheckpoint ?? "the seed";
        LogGeneration(_logger, _generation, n, from);
    }

    private void Lose(Member lost, string why, bool leaving = false) => Lose([lost], _ => why, leaving);

    /// <summary>
    /// Running → Forming (or Ending when it was one loss too many): members are gone; their generation
    /// aborts, everyone else joins again, and each lost one counts a restart and is killed by its
    /// launcher, unless it is <paramref name="leaving"/> on its own (it reported its failure and exits).
    /// </summary>
    private void Lose(IReadOnlyList<Member> lost, Func<Member, string> why, bool leaving = false)
    {
        _reached = Math.Max(_reached, _members.Max(m => m.Step));
        var told = lost.Select(m => (Member: m, What: $"rank {Array.IndexOf(_members, m)} (worker {m.Worker.WorkerId} on {m.Worker.Host}, step {m.Step}, phase {m.Phase}) was lost: {why(m)}")).ToList();
        string what = string.Join("; ", told.Select(t => t.What));
        LogLost(_logger, _generation, what);
        Tell(new MemberCommand(MemberCommandKind.Abort, _generation, what));
        _survivors = [.. _members.Except(lost).Select(m => m.Worker.WorkerId)];
        _members = [];
        _state = MembershipState.Forming;
        _formingSince = _time.GetUtcNow();
        Raise(GenerationAborted, what);
        foreach (var (member, itsWhat) in told)
        {
            _launchers.Lost(member.Worker);
            _losses++;
            if (!leaving)
            {
                Raise(MemberLost, new LostMember(member.Worker, itsWhat, _losses));
            }

            CountRestart(itsWhat);
        }

        FormIfComplete();
    }

    private void CountRestart(string what)
    {
        _restarts++;
        if (_restarts > _settings.MaxRestarts)
        {
            End(RunOutcome.Failure($"giving up after {_settings.MaxRestarts} restart(s): {what}", _restarts - 1));
        }
    }

    /// <summary>Sends every member the same last command of their generation and closes their channels.</summary>
    private void Tell(MemberCommand command)
    {
        foreach (var m in _members)
        {
            m.Commands.Writer.TryWrite(command);
            m.Commands.Writer.TryComplete();
        }
    }

    private Member? Find(string workerId, long generation) =>
        generation == _generation ? _members.FirstOrDefault(m => m.Worker.WorkerId == workerId) : null;

    private void Raise<T>(Action<T>? handler, T argument)
    {
        if (handler is not null)
        {
            _events.Add(() => handler(argument));
        }
    }

    private T Locked<T>(Func<T> read)
    {
        lock (_lock)
        {
            return read();
        }
    }

    /// <summary>Runs a transition under the lock, then raises the events it queued.</summary>
    private T Transition<T>(Func<T> change)
    {
        T result;
        Action[] raise;
        lock (_lock)
        {
            result = change();
            raise = [.. _events];
            _events.Clear();
        }

        foreach (var e in raise)
        {
            e();
        }

        return result;
    }

    private void Transition(Action change) => Transition(() =>
    {
        change();
        return 0;
    });

    public void Dispose() => _monitor.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {WorkerId} on {Host} joined ({Joined}/{WorldSize})")]
    private static partial void LogJoined(ILogger logger, string workerId, string host, int joined, int worldSize);

    [LoggerMessage(Level = LogLevel.Information, Message = "Generation {Generation} formed with {WorldSize} workers, starting from {From}")]
    private static partial void LogGeneration(ILogger logger, long generation, int worldSize, string from);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Generation {Generation} aborted: {What}")]
    private static partial void LogLost(ILogger logger, long generation, string what);

    [LoggerMessage(Level = LogLevel.Information, Message = "Checkpoint of step {Step} committed at {Directory}")]
    private static partial void LogCheckpoint(ILogger logger, long step, string directory);
}

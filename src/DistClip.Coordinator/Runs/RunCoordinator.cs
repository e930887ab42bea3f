using DistClip.Config;
using System.Text.Json;
using System.Threading.Channels;
using DistClip.Control;
using DistClip.Control.V1;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Runs;

/// <summary>
/// The run's membership and lifecycle, independent of gRPC: workers join, a generation forms when
/// every rank is present, heartbeats keep members alive, a lost member aborts the generation (the
/// survivors join again, a replacement joins, the next generation resumes from the latest committed
/// checkpoint), and the run ends when every rank of a generation has finished.
/// </summary>
public sealed partial class RunCoordinator : IDisposable
{
    private readonly RunSettings _settings;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Joiner> _joining = [];
    private readonly TaskCompletionSource<RunOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ITimer _monitor;
    private readonly RunConfigValues _config;
    private Member[] _members = [];
    private readonly HashSet<string> _alreadyLost = [];

    // Workers still to be told that the run is over (by a stop command or a stop assignment).
    private readonly HashSet<string> _toTell = [];
    private readonly TaskCompletionSource _allTold = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string[] _lastMembers = [];
    private long _generation;
    private int _restarts;
    private string? _latestCheckpoint;
    private DateTimeOffset _formingSince;
    private bool _ended;

    public RunCoordinator(RunSettings settings, ILogger logger, TimeProvider? time = null)
    {
        _settings = settings;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _latestCheckpoint = settings.ResumeFrom;
        _formingSince = _time.GetUtcNow();
        _config = RunConfigValuesMapping.ToMessage(settings.Config);
        var period = settings.HeartbeatInterval / 2;
        _monitor = _time.CreateTimer(_ => CheckDeadlines(), null, period, period);
    }

    public RunSettings Settings => _settings;

    /// <summary>Completes when the run has succeeded or failed for good.</summary>
    public Task<RunOutcome> Completion => _outcome.Task;

    public long Generation
    {
        get
        {
            lock (_lock)
            {
                return _generation;
            }
        }
    }

    /// <summary>Raised for every step rank 0 reports.</summary>
    public event Action<Progress>? ProgressReported;

    /// <summary>Raised when rank 0 reports a committed checkpoint.</summary>
    public event Action<CheckpointCommitted>? CheckpointReported;

    /// <summary>Raised when a generation aborts because a member was lost.</summary>
    public event Action<string>? GenerationAborted;

    /// <summary>Waits for a place in the next generation (or for the news that the run is over).</summary>
    public async Task<Assignment> JoinAsync(JoinRequest request, CancellationToken ct)
    {
        Joiner joiner;
        lock (_lock)
        {
            if (_ended)
            {
                Told(request.WorkerId);
                return new Assignment { RunId = _settings.RunId, Stop = true };
            }

            if (_joining.Count == 0 && _members.Length == 0)
            {
                _formingSince = _time.GetUtcNow();
            }

            joiner = new Joiner(request, _joining.Count);
            _joining[request.WorkerId] = joiner; // a re-join of the same worker replaces its old entry
            LogJoined(_logger, request.WorkerId, request.Host, _joining.Count, _settings.WorldSize);
            if (_joining.Count == _settings.WorldSize && _members.Length == 0)
            {
                FormGeneration();
            }
        }

        using var registration = ct.Register(() => joiner.Reply.TrySetCanceled(ct));
        try
        {
            return await joiner.Reply.Task.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            lock (_lock)
            {
                if (_joining.TryGetValue(request.WorkerId, out var current) && current == joiner)
                {
                    _joining.Remove(request.WorkerId);
                }
            }

            throw;
        }
    }

    /// <summary>Opens a member's command channel for its generation; null when it is not a current member.</summary>
    public ChannelReader<Command>? AttachHeartbeat(HeartbeatRequest first)
    {
        lock (_lock)
        {
            var member = Find(first.WorkerId, first.Generation);
            if (member is null)
            {
                return null;
            }

            member.LastSeen = _time.GetUtcNow();
            member.Phase = first.Phase;
            return member.Commands.Reader;
        }
    }

    public void RecordHeartbeat(HeartbeatRequest beat)
    {
        lock (_lock)
        {
            var member = Find(beat.WorkerId, beat.Generation);
            if (member is not null)
            {
                member.LastSeen = _time.GetUtcNow();
                member.Step = beat.Step;
                member.Phase = beat.Phase;
            }
        }
    }

    /// <summary>A member's heartbeat stream broke: its process or its link is gone.</summary>
    public void HeartbeatBroken(string workerId, long generation, string why)
    {
        lock (_lock)
        {
            var member = _ended ? null : Find(workerId, generation);
            if (member is not null && !member.Finished)
            {
                Lose(member, $"its heartbeat stream broke ({why})");
            }
        }
    }

    /// <summary>A launcher saw a worker process exit before the run ended. Returns whether to start a replacement.</summary>
    public bool WorkerExited(int slot, string host, int pid, int exitCode)
    {
        lock (_lock)
        {
            if (_ended)
            {
                return false;
            }

            // A launcher knows its own process (pid, host) and the slot it gave as preferred rank; a
            // remote worker reports another pid and host name, so the slot is what matches it.
            bool Mine(JoinRequest r) => (r.Pid == pid && r.Host == host) || (slot >= 0 && r.PreferredRank == slot);
            foreach (var (id, joiner) in _joining.Where(j => Mine(j.Value.Request)).ToList())
            {
                _joining.Remove(id);
                joiner.Reply.TrySetCanceled();
            }

            var member = _members.FirstOrDefault(m => Mine(m.Request));
            if (member is not null)
            {
                Lose(member, $"its process {pid} on {host} exited with status {exitCode}");
            }
            else if (_alreadyLost.Remove(LossKey(slot, host, pid)))
            {
                // Its broken heartbeat stream already aborted the generation and counted the restart.
            }
            else
            {
                // Lost while joining (at start-up or after an abort): a failure like any other.
                CountRestart($"worker slot {slot} (pid {pid} on {host}) exited with status {exitCode} while joining");
            }

            return !_ended;
        }
    }

    private static string LossKey(int preferredRank, string host, int pid) => preferredRank >= 0 ? $"slot {preferredRank}" : $"pid {pid} on {host}";

    public void ReportProgress(Progress progress)
    {
        if (progress.Generation == Generation)
        {
            ProgressReported?.Invoke(progress);
        }
    }

    public void ReportCheckpoint(CheckpointCommitted checkpoint)
    {
        lock (_lock)
        {
            _latestCheckpoint = checkpoint.Directory;
        }

        LogCheckpoint(_logger, checkpoint.Step, checkpoint.Directory);
        CheckpointReported?.Invoke(checkpoint);
    }

    /// <summary>Ends the run from outside (an interrupt, a launcher that cannot start workers).</summary>
    public void Fail(string error)
    {
        lock (_lock)
        {
            End(RunOutcome.Failure(error, _restarts));
        }
    }

    private void FormGeneration()
    {
        _generation++;
        int n = _settings.WorldSize;
        var byRank = new Joiner?[n];
        // A worker gets the rank it asked for (its launcher slot or Kubernetes index) when that rank
        // is free; the others fill the gaps in join order.
        foreach (var j in _joining.Values.OrderBy(j => j.Order))
        {
            int want = j.Request.PreferredRank;
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
        _members = byRank.Select(j => new Member(j!.Request) { LastSeen = now }).ToArray();
        var peers = _members.Select((m, r) => new Peer { Rank = r, CollectiveEndpoint = m.Request.CollectiveEndpoint, Host = m.Request.Host }).ToList();
        for (int r = 0; r < n; r++)
        {
            var assignment = new Assignment
            {
                RunId = _settings.RunId,
                Generation = _generation,
                Rank = r,
                WorldSize = n,
                Config = _config,
                ResumeFrom = _latestCheckpoint ?? "",
                CheckpointRoot = _settings.CheckpointRoot,
                CheckpointEvery = _settings.CheckpointEvery,
                KeepCheckpoints = _settings.KeepCheckpoints,
                HeartbeatIntervalMs = (int)_settings.HeartbeatInterval.TotalMilliseconds,
                CollectiveTimeoutMs = (int)_settings.CollectiveTimeout.TotalMilliseconds,
            };
            assignment.Peers.AddRange(peers);
            byRank[r]!.Reply.TrySetResult(assignment);
        }

        _joining.Clear();
        LogGeneration(_logger, _generation, n, _latestCheckpoint ?? "the seed");
    }

    /// <summary>Under the lock: a member is gone; abort its generation and let everyone rejoin.</summary>
    private void Lose(Member lost, string why)
    {
        int rank = Array.IndexOf(_members, lost);
        _alreadyLost.Add(LossKey(lost.Request.PreferredRank, lost.Request.Host, lost.Request.Pid));
        string what = $"rank {rank} (worker {lost.Request.WorkerId} on {lost.Request.Host}, step {lost.Step}, phase {lost.Phase}) was lost: {why}";
        LogLost(_logger, _generation, what);
        foreach (var m in _members)
        {
            m.Commands.Writer.TryWrite(new Command { Kind = Command.Types.Kind.Abort, Generation = _generation, Reason = what });
            m.Commands.Writer.TryComplete();
        }

        _lastMembers = _members.Where(m => m != lost).Select(m => m.Request.WorkerId).ToArray();
        _members = [];
        _formingSince = _time.GetUtcNow();
        GenerationAborted?.Invoke(what);
        CountRestart(what);
        if (!_ended && _joining.Count == _settings.WorldSize)
        {
            FormGeneration();
        }
    }

    private void CountRestart(string what)
    {
        _restarts++;
        if (_restarts > _settings.MaxRestarts)
        {
            End(RunOutcome.Failure($"giving up after {_settings.MaxRestarts} restart(s): {what}", _restarts - 1));
        }
    }

    private void CheckDeadlines()
    {
        lock (_lock)
        {
            if (_ended)
            {
                return;
            }

            var now = _time.GetUtcNow();
            var silent = _members.FirstOrDefault(m => !m.Finished && now - m.LastSeen > _settings.HeartbeatTimeout);
            if (silent is not null)
            {
                Lose(silent, $"no heartbeat for {(now - silent.LastSeen).TotalSeconds:F1} s (timeout {_settings.HeartbeatTimeout.TotalSeconds:F0} s)");
            }
            else if (_members.Length == 0 && now - _formingSince > _settings.JoinTimeout)
            {
                End(RunOutcome.Failure(
                    $"only {_joining.Count} of {_settings.WorldSize} workers joined within {_settings.JoinTimeout.TotalSeconds:F0} s", _restarts));
            }
        }
    }

    private Member? Find(string workerId, long generation) =>
        generation == _generation ? _members.FirstOrDefault(m => m.Request.WorkerId == workerId) : null;

    public void Dispose() => _monitor.Dispose();

    private sealed class Joiner(JoinRequest request, int order)
    {
        public JoinRequest Request { get; } = request;
        public int Order { get; } = order;
        public TaskCompletionSource<Assignment> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Member(JoinRequest request)
    {
        public JoinRequest Request { get; } = request;
        public Channel<Command> Commands { get; } = Channel.CreateUnbounded<Command>();
        public DateTimeOffset LastSeen { get; set; }
        public long Step { get; set; }
        public string Phase { get; set; } = "joining";
        public bool Finished { get; set; }
        public string? ParametersHash { get; set; }
        public string? SummaryJson { get; set; }
        public long PeakRssBytes { get; set; }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {WorkerId} on {Host} joined ({Joined}/{WorldSize})")]
    private static partial void LogJoined(ILogger logger, string workerId, string host, int joined, int worldSize);

    [LoggerMessage(Level = LogLevel.Information, Message = "Generation {Generation} formed with {WorldSize} workers, starting from {From}")]
    private static partial void LogGeneration(ILogger logger, long generation, int worldSize, string from);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Generation {Generation} aborted: {What}")]
    private static partial void LogLost(ILogger logger, long generation, string what);

    [LoggerMessage(Level = LogLevel.Information, Message = "Checkpoint of step {Step} committed at {Directory}")]
    private static partial void LogCheckpoint(ILogger logger, long step, string directory);
}

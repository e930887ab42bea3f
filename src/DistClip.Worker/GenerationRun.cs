using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DistClip.Checkpoints;
using DistClip.Collectives;
using DistClip.Collectives.Grpc;
using DistClip.Config;
using DistClip.Control;
using DistClip.Control.V1;
using DistClip.Training;
using DistClip.Training.Distributed;
using DistClip.Training.Faults;
using Microsoft.Extensions.Logging;

namespace DistClip.Worker;

internal enum GenerationEnd
{
    Stop,
    Rejoin,
}

/// <summary>
/// One generation on one worker: link to the ring, load or receive the weights, train, checkpoint
/// (rank 0), finish, and wait for the coordinator's verdict. An abort, or a collective that fails
/// because a peer is gone, ends it with <see cref="GenerationEnd.Rejoin"/>; a collective that timed
/// out is reported first (the coordinator blames the rank waited on, not this one). Any other
/// exception is reported (<see cref="FailureReports"/>) and ends the worker.
/// </summary>
internal sealed partial class GenerationRun(
    RunControl.RunControlClient client, GrpcCollectiveEndpoint endpoint, Assignment assignment, string workerId, ILoggerFactory loggers,
    FaultPlan faults, CheckpointFailures checkpointFailures, ReplicaState? kept)
{
    /// <summary>
    /// The replica state this worker keeps for the next generation: what it held when this one began,
    /// replaced by its state at the moment this one was cut off once it had loaded (consistent at a
    /// step boundary), and none after a finished run (the final checkpoint is then as new).
    /// </summary>
    public ReplicaState? Kept { get; private set; } = kept;

    private readonly ILogger _logger = loggers.CreateLogger("DistClip.Worker");
    private long _step;
    private volatile HeartbeatRequest.Types.Phase _phase = HeartbeatRequest.Types.Phase.Joining;
    private volatile TrainingSession? _session;

    /// <summary>The run's settings as this worker runs them (checked when the assignment arrived).</summary>
    private readonly RunConfig _config = ConfigOf(assignment);

    /// <summary>
    /// The checkpoint to load, held to the run's checkpoint directory (refused, as a fatal
    /// <see cref="ConfigException"/>, anywhere else); empty: none.
    /// </summary>
    private readonly string _resumeFrom = assignment.ResumeFrom.Length == 0 ? ""
        : ResumeDirectory.EnsureUnder(assignment.ResumeFrom, assignment.CheckpointRoot);

    public async Task<GenerationEnd> RunAsync(CancellationToken ct)
    {
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var identity = new HeartbeatRequest { WorkerId = workerId, Generation = assignment.Generation, RankToken = assignment.RankToken };
        await using var heartbeats = new Heartbeats(client, identity, TimeSpan.FromMilliseconds(assignment.HeartbeatIntervalMs), Status, abort);
        ICollectiveGroup? group = null;
        try
        {
            var membership = new CollectiveMembership(assignment.Rank, assignment.Peers.Select(p => new Uri(p.CollectiveEndpoint)).ToList(), assignment.Generation,
                new RingTokens(assignment.RankToken.ToByteArray(), assignment.LeftRankToken.ToByteArray()));
            group = await endpoint.JoinAsync(membership,
                new CollectiveOptions
                {
                    OperationTimeout = TimeSpan.FromSeconds(_config.CollectiveTimeoutSeconds),
                    ChunkBytes = _config.Training.ChunkKib << 10,
                }, abort.Token).ConfigureAwait(false);
            var token = abort.Token;
            var training = Task.Factory.StartNew(() => Train(group, token), token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            var finished = await TrainingOrStuck(training, token).ConfigureAwait(false);
            _phase = HeartbeatRequest.Types.Phase.Finished;
            // Logged before the call: once the coordinator has heard the last rank it says Stop, which
            // cancels this generation's calls and can overtake the answer to this very Finish.
            LogFinished(_logger, assignment.Generation, assignment.Rank, Interlocked.Read(ref _step), finished.PeakRssBytes / (1024.0 * 1024.0), finished.PeakRssBytes);
            await client.FinishAsync(finished, cancellationToken: abort.Token).ConfigureAwait(false);
            // Stay a member until the coordinator has heard every rank: stop, or abort if another rank fails late.
            await heartbeats.Listening.WaitAsync(ct).ConfigureAwait(false);
            return heartbeats.StopRequested ? GenerationEnd.Stop : GenerationEnd.Rejoin;
        }
        catch (Exception e) when (!ct.IsCancellationRequested && (abort.IsCancellationRequested || e is CollectiveException))
        {
            if (heartbeats.StopRequested)
            {
                return GenerationEnd.Stop;
            }

            if (!abort.IsCancellationRequested && FailureReports.IsCollectiveTimeout(e))
            {
                await ReportAsync(e, WorkerFailure.Types.Kind.CollectiveTimeout, ct).ConfigureAwait(false);
            }

            LogAbandoned(_logger, assignment.Generation, heartbeats.AbortReason ?? e.Message);
            return GenerationEnd.Rejoin;
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            // The worker exits with it; the coordinator hears first what happened, and where.
            await ReportAsync(e, FailureReports.KindOf(e), ct).ConfigureAwait(false);
            throw;
        }
        finally
        {
            if (group is not null)
            {
                await group.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// How long the training thread may take to stop after an abort (it keeps its state first)
    /// before the worker gives up on it: the run's collective timeout, the bound of any wait.
    /// </summary>
    private TimeSpan StuckAfterAbort => TimeSpan.FromSeconds(_config.CollectiveTimeoutSeconds);

    /// <summary>
    /// The training thread's result. Once the generation is aborted (or the worker told to stop),
    /// the thread has the collective timeout to notice; a thread blocked where no
    /// cancellation reaches (a read that never returns, a stalled device) would hold this worker,
    /// alive and heartbeating, out of every later generation, so the process exits
    /// (<see cref="WorkerExitCodes.Stuck"/>) and its launcher, or Kubernetes, starts a fresh one.
    /// </summary>
    private async Task<WorkerFinished> TrainingOrStuck(Task<WorkerFinished> training, CancellationToken abort)
    {
        var aborted = Task.Delay(Timeout.Infinite, abort);
        if (await Task.WhenAny(training, aborted).ConfigureAwait(false) != training
            && await Task.WhenAny(training, Task.Delay(StuckAfterAbort, CancellationToken.None)).ConfigureAwait(false) != training)
        {
            var (step, phase) = Status();
            LogStuck(_logger, assignment.Generation, StuckAfterAbort.TotalSeconds, step, phase.ToString().ToLowerInvariant());
            Environment.Exit(WorkerExitCodes.Stuck);
        }

        return await training.ConfigureAwait(false);
    }

    /// <summary>Where this worker is: steps done and phase, as its heartbeats and failure reports say.</summary>
    private (long Step, HeartbeatRequest.Types.Phase Phase) Status() =>
        (Interlocked.Read(ref _step), _session is { } session ? Heartbeats.PhaseOf(session.Phase) : _phase);

    private Task ReportAsync(Exception e, WorkerFailure.Types.Kind kind, CancellationToken ct)
    {
        var (step, phase) = Status();
        return FailureReports.SendAsync(client, FailureReports.Describe(e, kind, workerId, assignment, step, phase), _logger, ct);
    }

    /// <summary>On a dedicated thread: TorchSharp's dispose scopes belong to the thread that opened them.</summary>
    private WorkerFinished Train(ICollectiveGroup group, CancellationToken ct)
    {
        var wall = Stopwatch.StartNew();
        var options = _config.Training;
        bool leader = assignment.Rank == 0;
        using var collectives = new GroupStepCollectives(group, new GroupStepOptions { BucketBytes = options.BucketMib << 20 });
        _phase = HeartbeatRequest.Types.Phase.Loading;
        using var session = new TrainingSession(options, collectives, _logger, Faults.HooksFor(faults, assignment.RunId, assignment.Rank));
        _session = session;
        if (assignment.StateSource >= 0)
        {
            // Recovery from live peers: a survivor's kept state, handed over on the data plane.
            var state = collectives.HandOverState(assignment.Rank == assignment.StateSource ? Kept : null,
                assignment.StateSource, assignment.StateStep, session.Model, ct);
            session.RestoreReplicaState(state);
            LogHandedOver(_logger, assignment.Generation, assignment.StateSource, assignment.StateStep, state.Bytes.Length);
        }
        else if (_resumeFrom.Length > 0)
        {
            session.Load(CheckpointStore.ResolveDirectory(_resumeFrom, ct));
        }
        else
        {
            collectives.BroadcastParameters(session.Model, root: 0, ct);
        }

        Interlocked.Exchange(ref _step, session.StepsDone);
        try
        {
            TrainLoaded(session, ct);
        }
        catch (Exception e) when (ct.IsCancellationRequested || e is CollectiveException or OperationCanceledException)
        {
            // Cut off by a lost peer or an abort: the state as of the last completed step survives
            // this generation, for the next one to start from.
            Kept = Capture(session);
            throw;
        }

        Kept = null;
        _session = null;
        _phase = leader ? HeartbeatRequest.Types.Phase.Evaluate : HeartbeatRequest.Types.Phase.Finished;
        var summary = leader ? session.Summarize(wall.Elapsed.TotalSeconds) with { CheckpointFailures = checkpointFailures.Total } : null;
        var finished = new WorkerFinished
        {
            Generation = assignment.Generation,
            Rank = assignment.Rank,
            ParametersSha256 = session.ParametersSha256(),
            SummaryJson = summary is null ? "" : summary.ToJson(),
            // Read after the last step, the final checkpoint and rank 0's evaluation: the peak of the whole run.
            PeakRssBytes = PeakMemory.ResidentBytes(),
            RankToken = assignment.RankToken,
        };
        finished.PhaseSeconds.Add(session.MeanPhaseSeconds() ?? []);
        finished.WaitSeconds.Add(session.MeanWaitSeconds() ?? []);
        return finished;
    }

    private ReplicaState? Capture(TrainingSession session)
    {
        try
        {
            var state = session.CaptureReplicaState();
            LogKept(_logger, assignment.Generation, state.Step, state.Bytes.Length);
            return state;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogNotKept(_logger, assignment.Generation, e.Message);
            return null;
        }
    }

    /// <summary>The steps from the loaded state on: progress, checkpoints (rank 0), the final checkpoint.</summary>
    private void TrainLoaded(TrainingSession session, CancellationToken ct)
    {
        var options = _config.Training;
        bool leader = assignment.Rank == 0;
        var store = leader ? new CheckpointStore(new CheckpointOptions(assignment.CheckpointRoot, assignment.RunId, _config.Keep), _logger) : null;
        long lastSaved = session.StepsDone;
        session.Train(metrics =>
        {
            Interlocked.Exchange(ref _step, metrics.Step);
            _phase = Heartbeats.PhaseOf(session.Phase);
            if (!leader)
            {
                return;
            }

            _ = client.ReportProgressAsync(new Progress
            {
                Generation = assignment.Generation,
                Step = metrics.Step,
                TotalSteps = options.Steps,
                Loss = metrics.Loss,
                LearningRate = metrics.LearningRate,
                LogitScale = metrics.LogitScale,
                Samples = metrics.Samples,
                RankToken = assignment.RankToken,
            }, cancellationToken: ct).ResponseAsync.ContinueWith(static _ => { }, TaskScheduler.Default);
            if (_config.CheckpointEvery > 0 && metrics.Step % _config.CheckpointEvery == 0)
            {
                if (Commit(session, store!, ct))
                {
                    lastSaved = metrics.Step;
                }
            }
        }, ct);

        // The final checkpoint is tried again until it commits or the failures in a row reach
        // checkpoint_failures (which throws): there is no later interval to catch up.
        while (leader && lastSaved != session.StepsDone && !Commit(session, store!, ct))
        {
        }
    }

    /// <summary>
    /// The run's settings as this process runs them, read from the assignment's typed settings
    /// (refused by name when this worker does not know one, or one breaks a rule between settings).
    /// Threads 0 (automatic) become this worker's share of its CPUs:
    /// <see cref="Environment.ProcessorCount"/> (a container's CPU limit, rounded up) divided among
    /// the run's workers on this host.
    /// </summary>
    /// <exception cref="ConfigException">A setting this worker cannot use.</exception>
    public static RunConfig ConfigOf(Assignment assignment)
    {
        var config = RunConfigValuesMapping.FromMessage(assignment.Config ?? new RunConfigValues());
        config.Training.Validate(Math.Max(1, assignment.WorldSize));
        return config.Training.Threads > 0 ? config
            : config with { Training = config.Training with { Threads = AutomaticThreads(assignment, Environment.ProcessorCount) } };
    }

    /// <summary>The CPUs of this host shared evenly by the run's workers on it (peers with this worker's host name).</summary>
    internal static int AutomaticThreads(Assignment assignment, int processors)
    {
        string? host = assignment.Rank >= 0 && assignment.Rank < assignment.Peers.Count ? assignment.Peers[assignment.Rank].Host : null;
        int here = host is null ? 1 : assignment.Peers.Count(p => p.Host == host);
        return Math.Max(1, processors / Math.Max(1, here));
    }

    /// <summary>Rank 0 commits a checkpoint and reports it; false when it could not be written (counted, and logged).</summary>
    private bool Commit(TrainingSession session, CheckpointStore store, CancellationToken ct)
    {
        _phase = HeartbeatRequest.Types.Phase.Checkpoint;
        CommittedCheckpoint committed;
        try
        {
            committed = session.Save(store, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Disk full or read-only: the store removed its temporary directory and `latest` still names
            // the previous checkpoint. Train on; the next interval tries again (or the limit ends the run).
            checkpointFailures.Failed(session.StepsDone, store.RunDirectory, e, _config.CheckpointFailures);
            return false;
        }

        checkpointFailures.Succeeded();
        client.ReportCheckpoint(new CheckpointCommitted
        {
            Generation = assignment.Generation,
            Step = committed.Step,
            Directory = committed.Directory,
            RankToken = assignment.RankToken,
        }, cancellationToken: ct);
        return true;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Generation {Generation}: rank {Rank} finished at step {Step}; peak RSS {PeakRssMiB:F0} MiB ({PeakRssBytes} bytes)")]
    private static partial void LogFinished(ILogger logger, long generation, int rank, long step, double peakRssMiB, long peakRssBytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Generation {Generation}: took rank {Source}'s state at step {Step} ({Bytes} bytes over the data plane)")]
    private static partial void LogHandedOver(ILogger logger, long generation, int source, long step, int bytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Generation {Generation} cut off: keeping this replica's state at step {Step} ({Bytes} bytes) for the next")]
    private static partial void LogKept(ILogger logger, long generation, long step, int bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Generation {Generation} cut off, and this replica's state could not be kept: {Reason}")]
    private static partial void LogNotKept(ILogger logger, long generation, string reason);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Generation {Generation} aborted, but the training thread did not stop within {Seconds:F0} s (at step {Step}, phase {Phase}): exiting so that a replacement can start")]
    private static partial void LogStuck(ILogger logger, long generation, double seconds, long step, string phase);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Generation {Generation} abandoned: {Reason}")]
    private static partial void LogAbandoned(ILogger logger, long generation, string reason);
}

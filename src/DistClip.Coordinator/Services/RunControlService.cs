using System.Threading.Channels;
using DistClip.Checkpoints;
using DistClip.Control;
using DistClip.Control.V1;
using DistClip.Coordinator.Runs;
using DistClip.Coordinator.Telemetry;
using Google.Protobuf;
using Grpc.Core;

namespace DistClip.Coordinator.Services;

/// <summary>
/// The gRPC face of <see cref="Membership"/>: translation only, no decisions. The control protocol's
/// messages are mapped to the membership's records here and nowhere else. Every call that speaks
/// for a rank must present that rank's token for its generation (<see cref="RankIdentity"/>); the
/// check is here, before the membership hears of the call.
/// </summary>
internal sealed class RunControlService(Membership run, PrometheusTargets targets) : RunControl.RunControlBase
{
    private static readonly Ack Done = new();

    public override async Task<Assignment> Join(JoinRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.WorkerId) || !Uri.TryCreate(request.CollectiveEndpoint, UriKind.Absolute, out _))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "join needs a worker_id and an absolute collective_endpoint"));
        }

        // Kept state counts only for this run (a worker of an earlier run that joins this one holds none).
        long held = request.HeldRunId == run.Settings.RunId && request.HeldStep >= 0 ? request.HeldStep : -1;
        var worker = new WorkerIdentity(request.WorkerId, request.Host, request.Pid, request.CollectiveEndpoint, request.PreferredRank, held);
        var reply = await run.JoinAsync(worker, context.CancellationToken).ConfigureAwait(false);
        var assignment = AssignmentOf(reply, run.Settings, run.Identity);
        targets.Assigned(request, assignment);
        return assignment;
    }

    public override async Task Heartbeat(IAsyncStreamReader<HeartbeatRequest> requestStream, IServerStreamWriter<Command> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct).ConfigureAwait(false))
        {
            return;
        }

        var first = requestStream.Current;
        // The stream is the member's once its first beat carries the token of the member's rank;
        // later beats on it only move its step and phase (they are read as the first's worker and
        // generation), so nobody can beat, or break a stream, for a rank whose token they lack.
        int? rank = run.RankOf(first.WorkerId, first.Generation);
        if (rank is { } r)
        {
            Demand(first.RankToken, first.Generation, r, "heartbeat");
        }

        var commands = rank is null ? null : run.AttachHeartbeat(BeatOf(first));
        if (commands is null)
        {
            // Not a member of the current generation (it has already moved on): tell it to rejoin.
            await responseStream.WriteAsync(new Command { Kind = Command.Types.Kind.Abort, Generation = first.Generation, Reason = "not a member of the current generation" }, ct).ConfigureAwait(false);
            return;
        }

        using var forwarding = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var forward = ForwardCommandsAsync(commands, responseStream, forwarding.Token);
        try
        {
            while (await requestStream.MoveNext(ct).ConfigureAwait(false))
            {
                run.Heartbeat(BeatOf(requestStream.Current) with { WorkerId = first.WorkerId, Generation = first.Generation });
            }
        }
        catch (Exception e) when (e is IOException or RpcException or OperationCanceledException or InvalidOperationException)
        {
            run.HeartbeatBroken(first.WorkerId, first.Generation, e.Message);
            return;
        }

        // The worker closed its side on purpose (it left the generation, or the run is over): end
        // ours too, so that it sees a clean close rather than having to reset the stream — a reset
        // would read here as a broken stream, and blame a worker that is alive.
        run.HeartbeatClosed(first.WorkerId);
        await forwarding.CancelAsync().ConfigureAwait(false);
        await forward.ConfigureAwait(false);
    }

    private static async Task ForwardCommandsAsync(ChannelReader<MemberCommand> commands, IServerStreamWriter<Command> responseStream, CancellationToken ct)
    {
        try
        {
            await foreach (var command in commands.ReadAllAsync(ct).ConfigureAwait(false))
            {
                await responseStream.WriteAsync(CommandOf(command), ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or InvalidOperationException)
        {
            // The stream is gone; the reading side reports it.
        }
    }

    public override Task<Ack> ReportProgress(Progress request, ServerCallContext context)
    {
        Demand(request.RankToken, request.Generation, 0, "progress report"); // only rank 0 reports progress
        run.ReportProgress(new ProgressReport(request.Generation, request.Step, request.TotalSteps, request.Loss, request.LearningRate, request.LogitScale, request.Samples));
        return Task.FromResult(Done);
    }

    public override Task<Ack> ReportCheckpoint(CheckpointCommitted request, ServerCallContext context)
    {
        Demand(request.RankToken, request.Generation, 0, "checkpoint report"); // only rank 0 commits checkpoints
        // What is recorded here is every rank's next resume: it must be this run's checkpoint of the
        // step reported, where rank 0's store commits it, and not older than the one recorded.
        if (!ResumeDirectory.IsUnder(request.Directory, run.Settings.CheckpointRoot))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"the checkpoint reported for step {request.Step} is not under the run's checkpoint directory {run.Settings.CheckpointRoot}; not recorded"));
        }

        string expected = request.Step > 0 ? CheckpointStore.StepDirectory(run.Settings.CheckpointRoot, run.Settings.RunId, request.Step) : "";
        if (!ResumeDirectory.IsExactly(request.Directory, expected))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"the checkpoint reported for step {request.Step} is not this run's checkpoint of that step ({(expected.Length > 0 ? expected : "none: steps start at 1")}); not recorded"));
        }

        if (!run.ReportCheckpoint(new CheckpointReport(request.Generation, request.Step, request.Directory)))
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"the checkpoint reported for step {request.Step} is older than the latest one recorded; not recorded"));
        }

        return Task.FromResult(Done);
    }

    public override Task<Ack> Finish(WorkerFinished request, ServerCallContext context)
    {
        Demand(request.RankToken, request.Generation, request.Rank, "finish");
        run.Finish(new FinishReport(request.Generation, request.Rank, request.ParametersSha256,
            request.SummaryJson.Length == 0 ? null : request.SummaryJson, request.PeakRssBytes)
        {
            PhaseSeconds = FinishReport.KnownPhases(request.PhaseSeconds),
            WaitSeconds = FinishReport.Known(request.WaitSeconds, DistClip.Config.RunSummary.WaitNames),
        });
        return Task.FromResult(Done);
    }

    public override Task<Ack> ReportFailure(WorkerFailure request, ServerCallContext context)
    {
        // The membership acts on the worker id (it loses that member), so the token must be that of
        // the rank the worker holds, when it is a current member, not only of the rank the message names.
        int rank = run.RankOf(request.WorkerId, request.Generation) ?? request.Rank;
        Demand(request.RankToken, request.Generation, rank, "failure report");
        run.ReportFailure(FailureOf(request) with { Rank = rank });
        return Task.FromResult(Done);
    }

    /// <summary>
    /// Refuses the call (PermissionDenied) unless <paramref name="token"/> is that of (generation, rank):
    /// the caller has the run's secret (a call without it ended Unauthenticated before it got here) but
    /// not the right to speak for that rank.
    /// </summary>
    private void Demand(ByteString token, long generation, int rank, string call)
    {
        if (!run.Identity.Admits(token.Span, generation, rank, call))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, RankIdentity.Refusal(generation, rank)));
        }
    }

    internal static FailureReport FailureOf(WorkerFailure failure) => new(
        failure.WorkerId, failure.Generation, failure.Rank, failure.Step, PhaseName(failure.Phase),
        failure.Kind switch
        {
            WorkerFailure.Types.Kind.Fatal => FailureKind.Fatal,
            WorkerFailure.Types.Kind.CollectiveTimeout => FailureKind.CollectiveTimeout,
            _ => FailureKind.Error,
        },
        failure.ExceptionType, failure.Message);

    /// <summary>
    /// A seat as the worker's assignment: its generation and rank, its peers, the run's settings, its
    /// token, and the token of its left neighbour (the only rank its collectives endpoint admits).
    /// </summary>
    internal static Assignment AssignmentOf(JoinReply reply, RunSettings settings, RankIdentity identity)
    {
        if (reply is not Seated seat)
        {
            return new Assignment { RunId = settings.RunId, Stop = true };
        }

        var plan = seat.Plan;
        var assignment = new Assignment
        {
            RunId = settings.RunId,
            Generation = plan.Generation,
            Rank = seat.Rank,
            WorldSize = plan.WorldSize,
            Config = RunConfigValuesMapping.ToMessage(settings.Config),
            ResumeFrom = plan.ResumeFrom ?? "",
            StateSource = plan.StateSource,
            StateStep = plan.StateStep,
            CheckpointRoot = settings.CheckpointRoot,
            HeartbeatIntervalMs = (int)settings.HeartbeatInterval.TotalMilliseconds,
            RankToken = ByteString.CopyFrom(identity.TokenOf(plan.Generation, seat.Rank)),
            LeftRankToken = ByteString.CopyFrom(identity.TokenOf(plan.Generation, (seat.Rank - 1 + plan.WorldSize) % plan.WorldSize)),
        };
        assignment.Peers.AddRange(plan.Ranks.Select((w, r) => new Peer { Rank = r, CollectiveEndpoint = w.CollectiveEndpoint, Host = w.Host }));
        return assignment;
    }

    /// <summary>The phase as the membership names it in its messages: <c>PHASE_STEP</c> is "step".</summary>
    internal static string PhaseName(HeartbeatRequest.Types.Phase phase) => phase.ToString().ToLowerInvariant();

    private static MemberBeat BeatOf(HeartbeatRequest beat) => new(beat.WorkerId, beat.Generation, beat.Step, PhaseName(beat.Phase));

    private static Command CommandOf(MemberCommand command) => new()
    {
        Kind = command.Kind switch
        {
            MemberCommandKind.Abort => Command.Types.Kind.Abort,
            MemberCommandKind.Stop => Command.Types.Kind.Stop,
            _ => throw new ArgumentOutOfRangeException(nameof(command), command.Kind, "no such command"),
        },
        Generation = command.Generation,
        Reason = command.Reason,
    };
}

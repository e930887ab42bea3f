using DistClip.Control.V1;
using DistClip.Coordinator.Runs;
using DistClip.Coordinator.Telemetry;
using Grpc.Core;

namespace DistClip.Coordinator.Services;

/// <summary>The gRPC face of <see cref="RunCoordinator"/>: translation only, no decisions.</summary>
internal sealed class RunControlService(RunCoordinator run, PrometheusTargets targets) : RunControl.RunControlBase
{
    private static readonly Ack Done = new();

    public override async Task<Assignment> Join(JoinRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.WorkerId) || !Uri.TryCreate(request.CollectiveEndpoint, UriKind.Absolute, out _))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "join needs a worker_id and an absolute collective_endpoint"));
        }

        var assignment = await run.JoinAsync(request, context.CancellationToken).ConfigureAwait(false);
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
        var commands = run.AttachHeartbeat(first);
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
                run.RecordHeartbeat(requestStream.Current);
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

    private static async Task ForwardCommandsAsync(System.Threading.Channels.ChannelReader<Command> commands, IServerStreamWriter<Command> responseStream, CancellationToken ct)
    {
        try
        {
            await foreach (var command in commands.ReadAllAsync(ct).ConfigureAwait(false))
            {
                await responseStream.WriteAsync(command, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or InvalidOperationException)
        {
            // The stream is gone; the reading side reports it.
        }
    }

    public override Task<Ack> ReportProgress(Progress request, ServerCallContext context)
    {
        run.ReportProgress(request);
        return Task.FromResult(Done);
    }

    public override Task<Ack> ReportCheckpoint(CheckpointCommitted request, ServerCallContext context)
    {
        run.ReportCheckpoint(request);
        return Task.FromResult(Done);
    }

    public override Task<Ack> Finish(WorkerFinished request, ServerCallContext context)
    {
        run.Finish(request);
        return Task.FromResult(Done);
    }
}

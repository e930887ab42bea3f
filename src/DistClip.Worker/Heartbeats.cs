using DistClip.Control.V1;
using DistClip.Training;
using Grpc.Core;

namespace DistClip.Worker;

/// <summary>
/// A generation's heartbeat stream: beats every interval with the current step and phase, and turns
/// the coordinator's commands into cancellation (abort) or a stop request. The stream breaking is
/// itself news to the coordinator: this worker is gone.
/// </summary>
internal sealed class Heartbeats : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<HeartbeatRequest, Command> _call;
    private readonly CancellationTokenSource _abort;
    private readonly CancellationTokenSource _stopBeating = new();
    private readonly CancellationTokenSource _endCall = new();
    private readonly Task _beating;
    private readonly Task _listening;
    private readonly Func<(long Step, HeartbeatRequest.Types.Phase Phase)> _status;
    private readonly HeartbeatRequest _identity;

    public Heartbeats(RunControl.RunControlClient client, HeartbeatRequest identity, TimeSpan interval,
        Func<(long Step, HeartbeatRequest.Types.Phase Phase)> status, CancellationTokenSource abort)
    {
        _identity = identity;
        _status = status;
        _abort = abort;
        _call = client.Heartbeat(cancellationToken: _endCall.Token);
        _beating = BeatAsync(interval);
        _listening = ListenAsync();
    }

    /// <summary>The training session's phase as the control protocol names it.</summary>
    public static HeartbeatRequest.Types.Phase PhaseOf(TrainingPhase phase) => phase switch
    {
        TrainingPhase.Loading => HeartbeatRequest.Types.Phase.Loading,
        TrainingPhase.Data => HeartbeatRequest.Types.Phase.Data,
        TrainingPhase.Step => HeartbeatRequest.Types.Phase.Step,
        TrainingPhase.Checkpoint => HeartbeatRequest.Types.Phase.Checkpoint,
        TrainingPhase.Evaluate => HeartbeatRequest.Types.Phase.Evaluate,
        TrainingPhase.Finished => HeartbeatRequest.Types.Phase.Finished,
        TrainingPhase.Forward => HeartbeatRequest.Types.Phase.Forward,
        TrainingPhase.Exchange => HeartbeatRequest.Types.Phase.Exchange,
        TrainingPhase.Backward => HeartbeatRequest.Types.Phase.Backward,
        TrainingPhase.Reduce => HeartbeatRequest.Types.Phase.Reduce,
        TrainingPhase.Optimizer => HeartbeatRequest.Types.Phase.Optimizer,
        _ => HeartbeatRequest.Types.Phase.Unspecified,
    };

    /// <summary>The coordinator said the run is over.</summary>
    public bool StopRequested { get; private set; }

    /// <summary>Why the generation was aborted, when it was.</summary>
    public string? AbortReason { get; private set; }

    /// <summary>Completes when the coordinator sends stop or abort (or the stream ends).</summary>
    public Task Listening => _listening;

    private async Task BeatAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            do
            {
                var (step, phase) = _status();
                await _call.RequestStream.WriteAsync(new HeartbeatRequest(_identity) { Step = step, Phase = phase }, _stopBeating.Token).ConfigureAwait(false);
            }
            while (await timer.WaitForNextTickAsync(_stopBeating.Token).ConfigureAwait(false));
        }
        catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException or IOException)
        {
            // Stopped, or the coordinator is gone; the listener reports the latter.
        }
    }

    private async Task ListenAsync()
    {
        try
        {
            await foreach (var command in _call.ResponseStream.ReadAllAsync(_endCall.Token).ConfigureAwait(false))
            {
                if (command.Kind == Command.Types.Kind.Stop)
                {
                    StopRequested = true;
                    AbortReason = command.Reason;
                    await _abort.CancelAsync().ConfigureAwait(false);
                    return;
                }

                if (command.Kind == Command.Types.Kind.Abort)
                {
                    AbortReason = command.Reason;
                    await _abort.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }

            AbortReason ??= "the coordinator closed the heartbeat stream";
        }
        catch (Exception e) when (e is OperationCanceledException or RpcException or IOException)
        {
            if (!_endCall.IsCancellationRequested)
            {
                AbortReason = $"lost the coordinator: {e.Message}";
            }
        }

        // Without the coordinator this generation cannot end well: abandon it.
        if (!_endCall.IsCancellationRequested)
        {
            await _abort.CancelAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Leave politely: stop beating, close our side (the coordinator sees a clean end, not a
        // broken stream), then stop listening.
        await _stopBeating.CancelAsync().ConfigureAwait(false);
        await _beating.ConfigureAwait(false);
        try
        {
            await _call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or IOException)
        {
        }

        try
        {
            // The coordinator ends its side once it has seen ours end; only then is it safe to cancel
            // the call without the reset looking like this worker's death.
            await _listening.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A coordinator that does not answer: cancel regardless.
        }

        await _endCall.CancelAsync().ConfigureAwait(false);
        try
        {
            await _listening.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or RpcException)
        {
        }

        _call.Dispose();
        _stopBeating.Dispose();
        _endCall.Dispose();
    }
}

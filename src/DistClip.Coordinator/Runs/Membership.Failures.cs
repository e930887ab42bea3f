namespace DistClip.Coordinator.Runs;

/// <summary>
/// Failures workers report before they exit (or, after a collective timeout, rejoin): printed with
/// their cause, and decided on. A fatal error ends the run at once; the same error (type, message,
/// step) again in a later generation ends it too, since a restart did not cure it; any other error
/// loses its member, naming the cause. A collective timeout blames the rank waited on (Membership.Watchdog.cs).
/// </summary>
public sealed partial class Membership
{
    // Each error reported so far (type, message, step), with the generation it was first seen in.
    private readonly Dictionary<(string Type, string Message, long Step), long> _errors = [];

    /// <summary>Raised for every failure a worker reports, as a line for the coordinator's output (rank, step, phase, type and message).</summary>
    public event Action<string>? WorkerFailed;

    public void ReportFailure(FailureReport failure) => Transition(() =>
    {
        string where = $"rank {failure.Rank} (worker {failure.WorkerId}, generation {failure.Generation}) at step {failure.Step} in phase {failure.Phase}";
        Raise(WorkerFailed, failure.Kind switch
        {
            FailureKind.CollectiveTimeout => $"{where}: a collective timed out: {failure.Cause}",
            FailureKind.Fatal => $"{where} failed, and a restart cannot fix it: {failure.Cause}",
            _ => $"{where} failed: {failure.Cause}",
        });
        if (IsOver)
        {
            return;
        }

        var member = Find(failure.WorkerId, failure.Generation);
        member?.At(failure.Step, failure.Phase, _time.GetUtcNow());
        if (failure.Kind == FailureKind.CollectiveTimeout)
        {
            if (member is not null)
            {
                LoseWaitedOn(member, failure);
            }

            return;
        }

        var signature = (failure.ExceptionType, failure.Message, failure.Step);
        if (failure.Kind == FailureKind.Fatal)
        {
            End(RunOutcome.Failure($"{where} failed with an error a restart cannot fix: {failure.Cause}", _restarts));
        }
        else if (_errors.TryGetValue(signature, out long first) && first < failure.Generation)
        {
            End(RunOutcome.Failure(
                $"{where} failed with the same error as in generation {first}, which a restart did not fix: {failure.Cause}", _restarts));
        }
        else
        {
            _errors.TryAdd(signature, failure.Generation);
            if (member is not null && !member.Finished)
            {
                Lose(member, $"it failed: {failure.Cause}", leaving: true);
            }

            return;
        }

        Told(failure.WorkerId); // it exits now: nothing to wait for
    });
}

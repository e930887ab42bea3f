namespace DistClip.Coordinator.Runs;

/// <summary>
/// The progress watchdog. A hung worker keeps heartbeating from its timer, so silence cannot catch
/// it; the (step, phase) its beats carry can. When no member still training has moved for
/// <see cref="RunSettings.StepTimeout"/> (a finished member waits for the verdict, and is left out),
/// or when a member's collective times out (it reports so),
/// the members holding the generation up are lost: those with the lowest step that are not waiting
/// on a peer (the others wait on them); when every member waits, the one that has waited longest.
/// The member that gave up first is not the one to blame.
/// </summary>
public sealed partial class Membership
{
    /// <summary>Phases in which a member waits on its peers (a collective, the ring forming, rank 0's weights), as heartbeats name them.</summary>
    private static readonly HashSet<string> WaitingPhases = new(StringComparer.Ordinal) { "exchange", "reduce", "loading", "joining" };

    // Each stall so far (steps done and phase of the member that stalled), with the generation it was first seen in.
    private readonly Dictionary<(long Step, string Phase), long> _stalls = [];

    /// <summary>When no member still training has progressed for the step timeout, loses those that hold the others up.</summary>
    private void LoseStalled(DateTimeOffset now)
    {
        var training = _members.Where(m => !m.Finished).ToList();
        if (training.Count == 0 || training.Any(m => now - m.ProgressAt <= _settings.StepTimeout))
        {
            return;
        }

        var (stalled, working) = Blame(training);
        string timeout = $"step timeout {_settings.StepTimeout.TotalSeconds:F0} s";
        string waited = training.Count > stalled.Count ? " while the other ranks waited on it" : "";
        if (StalledAgain(stalled))
        {
            return;
        }

        Lose(stalled, m => working
            ? $"stalled: no progress for {(now - m.ProgressAt).TotalSeconds:F0} s{waited} ({timeout})"
            : $"stalled: no rank progressed for {(now - m.ProgressAt).TotalSeconds:F0} s, each waiting on a peer; this one has waited longest ({timeout})");
    }

    /// <summary>A member's collective timed out: it gave up first, but the member it waited on is lost (the reporter rejoins).</summary>
    private void LoseWaitedOn(Member reporter, FailureReport failure)
    {
        var others = _members.Where(m => m != reporter && !m.Finished).ToList();
        if (others.Count == 0)
        {
            return; // nothing to wait on: its own silence will tell
        }

        var now = _time.GetUtcNow();
        var (stalled, _) = Blame(others);
        if (StalledAgain(stalled))
        {
            return;
        }

        Lose(stalled, m => $"stalled: no progress for {(now - m.ProgressAt).TotalSeconds:F0} s; rank {failure.Rank}'s collective timed out waiting on it ({failure.Cause})");
    }

    /// <summary>
    /// A stall at the same step and phase as one in an earlier generation (the same sample that
    /// blocks a read, the same hung device call) is not cured by a restart: the run ends, naming it,
    /// instead of spending every restart on it. Otherwise the stall is remembered.
    /// </summary>
    private bool StalledAgain(IReadOnlyList<Member> stalled)
    {
        foreach (var m in stalled)
        {
            if (_stalls.TryGetValue((m.Step, m.Phase), out long first) && first < _generation)
            {
                End(RunOutcome.Failure(
                    $"rank {Array.IndexOf(_members, m)} (worker {m.Worker.WorkerId} on {m.Worker.Host}) stalled at step {m.Step} in phase {m.Phase} "
                    + $"as a rank did in generation {first}, which a restart did not fix", _restarts));
                return true;
            }
        }

        foreach (var m in stalled)
        {
            _stalls.TryAdd((m.Step, m.Phase), _generation);
        }

        return false;
    }

    /// <summary>
    /// Who holds the generation up among <paramref name="candidates"/>: the lowest-step members not
    /// waiting on a peer (<c>Working</c>); when all wait, the one whose progress is oldest.
    /// </summary>
    private static (IReadOnlyList<Member> Stalled, bool Working) Blame(IReadOnlyList<Member> candidates)
    {
        var working = candidates.Where(m => !WaitingPhases.Contains(m.Phase)).ToList();
        if (working.Count > 0)
        {
            long lowest = working.Min(m => m.Step);
            return ([.. working.Where(m => m.Step == lowest)], true);
        }

        return ([candidates.MinBy(m => m.ProgressAt)!], false);
    }
}

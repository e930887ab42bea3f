using DistClip.Config;

namespace DistClip.Coordinator.Runs;

/// <summary>How a run ends (Running → Ending), and making sure every worker hears that it has (Ending → Ended).</summary>
public sealed partial class Membership
{
    // Ending: workers still to be told that the run is over (by a stop command or a stop reply to a join).
    private readonly HashSet<string> _toTell = [];
    private readonly TaskCompletionSource _allTold = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// A member finished its last step. When every rank of the generation has, the run succeeds if
    /// their parameters agree; the summary is rank 0's, with what only the coordinator knows (restarts,
    /// world size, every rank's peak memory).
    /// </summary>
    public void Finish(FinishReport finished) => Transition(() =>
    {
        if (_state != MembershipState.Running || finished.Generation != _generation || finished.Rank < 0 || finished.Rank >= _members.Length)
        {
            return;
        }

        var member = _members[finished.Rank];
        member.Finished = true;
        member.ParametersHash = finished.ParametersSha256;
        member.PeakRssBytes = finished.PeakRssBytes;
        member.PhaseSeconds = finished.PhaseSeconds;
        member.WaitSeconds = finished.WaitSeconds;
        if (finished.Rank == 0)
        {
            member.SummaryJson = finished.SummaryJson;
        }

        if (_members.Any(m => !m.Finished))
        {
            return;
        }

        var hashes = _members.Select(m => m.ParametersHash).Distinct().ToList();
        if (hashes.Count != 1)
        {
            End(RunOutcome.Failure(
                "replicas diverged: ranks ended with different parameters (" +
                string.Join(", ", _members.Select((m, r) => $"rank {r}: {m.ParametersHash?[..Math.Min(12, m.ParametersHash.Length)]}")) + ")",
                _restarts));
            return;
        }

        var summary = RunSummary.FromJson(_members[0].SummaryJson ?? "null");
        long[] peaks = [.. _members.Select(m => m.PeakRssBytes)];
        End(RunOutcome.Success(summary with
        {
            Restarts = _restarts,
            StepsRedone = _stepsRedone,
            WorldSize = _settings.WorldSize,
            ParametersSha256 = hashes[0],
            PeakRssBytes = peaks,
            PeakRssBytesMax = peaks.Max(),
            PhaseSecondsByRank = [.. _members.Select(m => new Dictionary<string, double>(m.PhaseSeconds, StringComparer.Ordinal))],
            WaitSecondsByRank = _members.All(m => m.WaitSeconds.Count == 0)
                ? null
                : [.. _members.Select(m => new Dictionary<string, double>(m.WaitSeconds, StringComparer.Ordinal))],
        }, _restarts));
    });

    /// <summary>
    /// A worker closed its heartbeat stream on purpose: it left the generation (not a loss; if its
    /// generation goes on without it, its silence or its launcher says so), or it heard the run is over.
    /// </summary>
    /// <remarks>
    /// Only a member that was sent Stop has heard the run is over by closing its stream. A survivor of
    /// an aborted generation (sent Abort, and the run ended before it joined again) closes its stream
    /// on its way to joining again; it is told when that join arrives. Counting its close as told
    /// let the coordinator exit first, and the survivor, finding nobody, exited as if the coordinator
    /// had been lost (status 4; seen once in CI, MultiHostTests' cut link).
    /// </remarks>
    public void HeartbeatClosed(string workerId) => Transition(() =>
    {
        if (!_survivors.Contains(workerId))
        {
            Told(workerId);
        }
    });

    /// <summary>
    /// Waits (bounded) until every worker of the last generation has heard that the run is over, so
    /// that stopping the server does not look like a lost coordinator to them. A worker cut off from
    /// the network never hears it; the bound keeps that from holding the coordinator.
    /// </summary>
    public async Task WaitUntilWorkersToldAsync(TimeSpan bound)
    {
        try
        {
            await _allTold.Task.WaitAsync(bound, _time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Those left will notice the coordinator is gone and exit on their own.
        }
    }

    /// <summary>Ending → Ended once the last worker to tell has heard.</summary>
    private void Told(string workerId)
    {
        if (_state == MembershipState.Ending && _toTell.Remove(workerId) && _toTell.Count == 0)
        {
            AllTold();
        }
    }

    /// <summary>Forming or Running → Ending: the outcome is decided; the members hear it now, the rest when they join.</summary>
    private void End(RunOutcome outcome)
    {
        if (IsOver)
        {
            return;
        }

        _state = MembershipState.Ending;
        _toTell.UnionWith(_members.Select(m => m.Worker.WorkerId));
        _toTell.UnionWith(_survivors);
        Tell(new MemberCommand(MemberCommandKind.Stop, _generation, outcome.Error ?? "run finished"));
        foreach (var j in _joining.Values)
        {
            j.Reply.TrySetResult(RunOver.Instance);
            _toTell.Remove(j.Worker.WorkerId);
        }

        _joining.Clear();
        if (_toTell.Count == 0)
        {
            AllTold();
        }

        _outcome.TrySetResult(outcome);
    }

    private void AllTold()
    {
        _state = MembershipState.Ended;
        _allTold.TrySetResult();
    }
}

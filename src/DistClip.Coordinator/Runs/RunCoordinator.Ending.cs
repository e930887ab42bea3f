using DistClip.Control.V1;
using DistClip.Config;

namespace DistClip.Coordinator.Runs;

/// <summary>How a run ends, and making sure every worker hears that it has.</summary>
public sealed partial class RunCoordinator
{
    /// <summary>
    /// A member finished its last step. When every rank of the generation has, the run succeeds if
    /// their parameters agree; the summary is rank 0's, with what only the coordinator knows (restarts,
    /// world size, every rank's peak memory).
    /// </summary>
    public void Finish(WorkerFinished finished)
    {
        lock (_lock)
        {
            if (_ended || finished.Generation != _generation || finished.Rank < 0 || finished.Rank >= _members.Length)
            {
                return;
            }

            var member = _members[finished.Rank];
            member.Finished = true;
            member.ParametersHash = finished.ParametersSha256;
            member.PeakRssBytes = finished.PeakRssBytes;
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
            long[] peaks = _members.Select(m => m.PeakRssBytes).ToArray();
            End(RunOutcome.Success(summary with
            {
                Restarts = _restarts,
                WorldSize = _settings.WorldSize,
                ParametersSha256 = hashes[0],
                PeakRssBytes = peaks,
                PeakRssBytesMax = peaks.Max(),
            }, _restarts));
        }
    }

    /// <summary>A worker closed its heartbeat stream on purpose (it left the generation, or the run is over).</summary>
    public void HeartbeatClosed(string workerId)
    {
        lock (_lock)
        {
            if (_ended)
            {
                Told(workerId);
            }
        }
    }

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

    private void Told(string workerId)
    {
        if (_toTell.Remove(workerId) && _toTell.Count == 0)
        {
            _allTold.TrySetResult();
        }
    }

    private void End(RunOutcome outcome)
    {
        if (_ended)
        {
            return;
        }

        _ended = true;
        _toTell.UnionWith(_members.Select(m => m.Request.WorkerId));
        _toTell.UnionWith(_lastMembers);
        foreach (var m in _members)
        {
            m.Commands.Writer.TryWrite(new Command { Kind = Command.Types.Kind.Stop, Generation = _generation, Reason = outcome.Error ?? "run finished" });
            m.Commands.Writer.TryComplete();
        }

        foreach (var j in _joining.Values)
        {
            j.Reply.TrySetResult(new Assignment { RunId = _settings.RunId, Stop = true });
            _toTell.Remove(j.Request.WorkerId);
        }

        _joining.Clear();
        if (_toTell.Count == 0)
        {
            _allTold.TrySetResult();
        }

        _outcome.TrySetResult(outcome);
    }
}

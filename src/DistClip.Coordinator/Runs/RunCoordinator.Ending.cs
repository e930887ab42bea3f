using DistClip.Control.V1;

namespace DistClip.Coordinator.Runs;

/// <summary>How a run ends, and making sure every worker hears that it has.</summary>
public sealed partial class RunCoordinator
{
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

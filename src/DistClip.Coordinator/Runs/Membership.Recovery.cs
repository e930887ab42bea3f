namespace DistClip.Coordinator.Runs;

/// <summary>
/// Recovery from live peers (docs/architecture.md): which member's kept replica state a new
/// generation starts from, or the checkpoint when none can serve, and how many steps that redoes.
/// </summary>
public sealed partial class Membership
{
    private long _latestCheckpointStep;

    // The most steps any rank is known to have completed (heartbeats, kept states), and the steps
    // trained twice because a generation restarted below it.
    private long _reached;
    private long _stepsRedone;

    /// <summary>
    /// Where a generation's state comes from (docs/architecture.md, "Recovery from live peers"): the
    /// member that kept the most steps, when that is no fewer than the latest checkpoint's (ties: the
    /// lowest rank; all who completed a step hold it bit for bit); else the latest checkpoint; else
    /// the seed. Counts the steps this sends back below the most any rank had completed.
    /// </summary>
    private GenerationPlan PlanStart(long generation, WorkerIdentity[] ranks)
    {
        int source = -1;
        for (int r = 0; r < ranks.Length; r++)
        {
            if (ranks[r].HeldStep >= 0 && (source < 0 || ranks[r].HeldStep > ranks[source].HeldStep))
            {
                source = r;
            }
        }

        if (source >= 0)
        {
            _reached = Math.Max(_reached, ranks[source].HeldStep);
        }

        long checkpointStep = _latestCheckpoint is null ? 0 : _latestCheckpointStep;
        bool fromSurvivor = source >= 0 && (_latestCheckpoint is null || ranks[source].HeldStep >= _latestCheckpointStep);
        long start = fromSurvivor ? ranks[source].HeldStep : checkpointStep;
        _stepsRedone += Math.Max(0, _reached - start);
        _reached = Math.Max(_reached, start);
        return fromSurvivor
            ? new GenerationPlan(generation, ranks, _latestCheckpoint, source, ranks[source].HeldStep)
            : new GenerationPlan(generation, ranks, _latestCheckpoint);
    }

    /// <summary>The step of a checkpoint directory named like <c>step-000001200</c>; 0 when the name does not say.</summary>
    private static long StepOfCheckpoint(string? directory)
    {
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(directory ?? ""));
        return name.StartsWith("step-", StringComparison.Ordinal) && long.TryParse(name.AsSpan(5), out long step) ? step : 0;
    }
}

namespace DistClip.Training.Steps;

/// <summary>
/// How long one rank's step <paramref name="Step"/> waited in collectives: the loss stage's
/// (the <c>all_gather</c> phase) and what was left of the gradient reduction after backward (the
/// <c>all_reduce</c> phase).
/// </summary>
public readonly record struct CollectiveWaits(long Step, double AllGather, double AllReduce)
{
    public double Total => AllGather + AllReduce;
}

/// <summary>
/// One step's collective waits split by cause, from every rank's (docs/training-step.md, "Waits").
/// In each collective phase the rank that waited least is the one that arrived last: it found every
/// peer ready, so its wait is what the communication itself took. <see cref="ExposedCommunication"/>
/// is the sum of those two least waits: what communication added to the step, the same on every
/// rank. <see cref="PeerWait"/> is the rest of this rank's wait, the time it waited for slower ranks
/// to arrive: load imbalance, which would remain with free communication.
/// </summary>
/// <param name="Step">The step the split describes (the one before the step that reports it).</param>
public sealed record WaitSplit(long Step, double ExposedCommunication, double PeerWait)
{
    /// <summary>
    /// The split of rank <paramref name="rank"/>'s waits, given every rank's for the same step; null
    /// when some rank has none (its first step, or after a restart) or they are of different steps.
    /// </summary>
    public static WaitSplit? From(IReadOnlyList<CollectiveWaits?> all, int rank)
    {
        ArgumentNullException.ThrowIfNull(all);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, all.Count);
        if (all.Any(w => w is null) || all.Select(w => w!.Value.Step).Distinct().Count() != 1)
        {
            return null;
        }

        double gather = all.Min(w => w!.Value.AllGather);
        double reduce = all.Min(w => w!.Value.AllReduce);
        var mine = all[rank]!.Value;
        double exposed = gather + reduce;
        return new WaitSplit(mine.Step, exposed, Math.Max(0, mine.Total - exposed));
    }
}

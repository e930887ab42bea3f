namespace DistClip.Checkpoints;

/// <summary>
/// The checkpoint was written under a different config than the one resuming it. The message lists
/// every differing field that was not allowed to change, with both values.
/// </summary>
public sealed class CheckpointMismatchException : Exception
{
    public CheckpointMismatchException(IReadOnlyList<ConfigDifference> differences)
        : base(Format(differences))
    {
        Differences = differences;
    }

    /// <summary>The fields that differ and were not allowed to.</summary>
    public IReadOnlyList<ConfigDifference> Differences { get; }

    private static string Format(IReadOnlyList<ConfigDifference> differences) =>
        $"The checkpoint's config differs from this run's in {differences.Count} field(s); refusing to resume. " +
        "Pass the fields allowed to change to resume anyway." + Environment.NewLine + "  " +
        string.Join(Environment.NewLine + "  ", differences);
}

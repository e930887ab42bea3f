namespace DistClip.Checkpoints;

/// <summary>
/// No usable checkpoint: an explicit directory that does not exist, or a run whose every checkpoint
/// failed verification (<see cref="Problems"/> lists why each was rejected, newest first).
/// </summary>
public sealed class CheckpointNotFoundException : IOException
{
    public CheckpointNotFoundException(string message, IReadOnlyList<string> problems)
        : base(problems.Count == 0 ? message : message + Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", problems))
    {
        Problems = problems;
    }

    public IReadOnlyList<string> Problems { get; }
}

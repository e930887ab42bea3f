namespace DistClip.Checkpoints;

/// <summary>Where one run's checkpoints live and how many of them are kept.</summary>
/// <param name="Root">The checkpoint root on shared storage; each run gets one directory under it.</param>
/// <param name="RunId">The run's directory name under <paramref name="Root"/>.</param>
/// <param name="Keep">
/// How many committed checkpoints to keep (at least 1). Older ones are deleted after each successful
/// commit; the one <c>latest</c> names is never deleted.
/// </param>
public sealed record CheckpointOptions(string Root, string RunId, int Keep = 3)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Root))
        {
            throw new ArgumentException("Checkpoint root must be a directory path.", nameof(Root));
        }
        // The run id becomes a single directory name: separators or dot names would escape the root,
        // and the temp prefix would make the reader ignore the run.
        if (!CheckpointLayout.IsPlainName(RunId) || RunId.StartsWith(CheckpointLayout.TempPrefix, StringComparison.Ordinal))
        {
            throw new ArgumentException(
                $"Run id '{RunId}' must be one plain directory name (letters, digits, '.', '_', '-').", nameof(RunId));
        }
        if (Keep < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Keep), Keep, "Keep must be at least 1: the newest checkpoint is always kept.");
        }
    }
}

namespace DistClip.Checkpoints;

/// <summary>
/// Checkpoints could not be written this many times in a row (<c>checkpoint_failures</c>): the
/// storage is full, read-only or gone, and training on would only lose more work when the run
/// ends. Not an <see cref="IOException"/> on purpose: it is the verdict on the failures, not one
/// more of them, and nothing should retry it.
/// </summary>
public sealed class CheckpointWriteException : Exception
{
    public CheckpointWriteException(string directory, int failures, Exception lastError)
        : base($"{failures} checkpoints in a row could not be written to {directory} (checkpoint_failures {failures}); the last error: {lastError.Message}", lastError)
    {
        Directory = directory;
        Failures = failures;
    }

    public CheckpointWriteException()
    {
        Directory = "";
    }

    public CheckpointWriteException(string message)
        : base(message)
    {
        Directory = "";
    }

    public CheckpointWriteException(string message, Exception innerException)
        : base(message, innerException)
    {
        Directory = "";
    }

    /// <summary>The run's checkpoint directory.</summary>
    public string Directory { get; }

    /// <summary>Failed writes in a row.</summary>
    public int Failures { get; }
}

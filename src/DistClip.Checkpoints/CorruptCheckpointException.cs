namespace DistClip.Checkpoints;

/// <summary>A checkpoint directory failed verification; the message names the directory and the file.</summary>
public sealed class CorruptCheckpointException : IOException
{
    public CorruptCheckpointException(string directory, string? fileName, string reason)
        : base(fileName is null
            ? $"Checkpoint {directory} is unusable: {reason}"
            : $"Checkpoint {directory} is corrupt: {fileName}: {reason}")
    {
        Directory = directory;
        FileName = fileName;
        Reason = reason;
    }

    /// <summary>The step directory that failed.</summary>
    public string Directory { get; }

    /// <summary>The file inside it that failed, or null when the directory itself is missing.</summary>
    public string? FileName { get; }

    /// <summary>What was wrong, without the directory and file name.</summary>
    public string Reason { get; }
}

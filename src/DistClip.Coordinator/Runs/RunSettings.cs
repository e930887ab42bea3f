using DistClip.Config;

namespace DistClip.Coordinator.Runs;

/// <summary>
/// What the coordinator needs to run one distributed training run: the user's settings (validated
/// before any worker starts, with <see cref="RunConfig.Workers"/> resolved) and what the coordinator
/// decided around them. The settings are read from <see cref="Config"/>, never copied.
/// </summary>
public sealed record RunSettings
{
    public required string RunId { get; init; }
    public required string Secret { get; init; }

    /// <summary>The run's settings as the user gave them, workers resolved; each worker receives them all.</summary>
    public required RunConfig Config { get; init; }

    public required string RunDirectory { get; init; }
    public required string CheckpointRoot { get; init; }

    /// <summary>Checkpoint directory the first generation loads; null starts from the seed.</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>How often workers heartbeat (the coordinator's choice, sent in the assignment).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a generation may take to form (every rank joined) before the run fails.</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromMinutes(5);

    public TrainOptions Training => Config.Training;

    /// <summary>Ranks in every generation.</summary>
    public int WorldSize => Config.Workers;

    /// <summary>How many times a lost worker may be replaced before the run fails.</summary>
    public int MaxRestarts => Config.MaxRestarts;

    /// <summary>A worker silent for this long is dead.</summary>
    public TimeSpan HeartbeatTimeout => TimeSpan.FromSeconds(Config.HeartbeatTimeoutSeconds);

    /// <summary>No rank progressing for this long is a stall (the progress watchdog).</summary>
    public TimeSpan StepTimeout => TimeSpan.FromSeconds(Config.StepTimeoutSeconds);
}

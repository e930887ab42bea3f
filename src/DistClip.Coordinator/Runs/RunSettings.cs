using DistClip.Config;

namespace DistClip.Coordinator.Runs;

/// <summary>What the coordinator needs to run one distributed training run (validated before any worker starts).</summary>
public sealed record RunSettings
{
    public required string RunId { get; init; }
    public required string Secret { get; init; }
    /// <summary>The run's settings as the user gave them; each worker receives them all.</summary>
    public required RunConfig Config { get; init; }

    public TrainOptions Training => Config.Training;
    public required int WorldSize { get; init; }
    public required string RunDirectory { get; init; }
    public required string CheckpointRoot { get; init; }

    /// <summary>Rank 0 commits a checkpoint every N steps (0: only the final one).</summary>
    public int CheckpointEvery { get; init; } = 100;

    public int KeepCheckpoints { get; init; } = 3;

    /// <summary>Checkpoint directory the first generation loads; null starts from the seed.</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>How many times a lost worker may be replaced before the run fails.</summary>
    public int MaxRestarts { get; init; } = 3;

    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A worker silent for this long is dead.</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Bound on one collective operation in the workers.</summary>
    public TimeSpan CollectiveTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a generation may take to form (every rank joined) before the run fails.</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromMinutes(5);
}

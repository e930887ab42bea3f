using DistClip.Model;
using DistClip.Training;

namespace DistClip.Coordinator.Cli;

/// <summary>A run as the user asked for it: the training settings and how to run them.</summary>
public sealed record LaunchSettings
{
    public TrainOptions Training { get; init; } = new();
    /// <summary>Worker processes; 0 = automatic: 2 on this machine, or the hostfile's slots.</summary>
    public int Workers { get; init; }

    /// <summary>An MPI-style hostfile (<c>host slots=N [port=P] [user=U] [gpus=LIST]</c>): start the workers there over ssh.</summary>
    public string? Hostfile { get; init; }

    /// <summary>Extra ssh arguments, split on whitespace (e.g. <c>-i KEY -o UserKnownHostsFile=FILE</c>).</summary>
    public string? SshOptions { get; init; }

    /// <summary>The command that starts a worker on a remote host (default: dotnet and this install's worker.dll).</summary>
    public string? RemoteWorker { get; init; }

    /// <summary>The host name workers use to reach the coordinator (default: this host's name, or 127.0.0.1 for loopback-only runs).</summary>
    public string? AdvertiseHost { get; init; }
    public string? RunId { get; init; }
    public string? RunDir { get; init; }
    public string CheckpointDir { get; init; } = "checkpoints";
    public int CheckpointEvery { get; init; } = 100;
    public int Keep { get; init; } = 3;
    public string? Resume { get; init; }
    public int MaxRestarts { get; init; } = 3;
    public double HeartbeatTimeoutSeconds { get; init; } = 15;
    public double CollectiveTimeoutSeconds { get; init; } = 60;

    /// <summary>Refuses what is wrong with the settings themselves (the files they name are checked in <see cref="Preflight"/>).</summary>
    public void Validate()
    {
        Require(Workers >= 0, "workers", $"must be at least 1, or 0 for automatic (got {Workers})");
        Require(CheckpointEvery >= 0, "checkpoint_every", $"must be 0 (only at the end) or more (got {CheckpointEvery})");
        Require(Keep >= 1, "keep", $"must be at least 1 (got {Keep})");
        Require(MaxRestarts >= 0, "max_restarts", $"must be 0 or more (got {MaxRestarts})");
        Require(HeartbeatTimeoutSeconds > 0, "heartbeat_timeout", $"must be positive (got {HeartbeatTimeoutSeconds})");
        Require(CollectiveTimeoutSeconds > 0, "collective_timeout", $"must be positive (got {CollectiveTimeoutSeconds})");
        Require(RunId is null || (RunId.Length > 0 && RunId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && !RunId.StartsWith('.')),
            "run_id", $"'{RunId}' must be letters, digits, '-', '_' or '.', not starting with '.'");
        Training.Validate(Math.Max(1, Workers));
    }

    private static void Require(bool ok, string field, string message)
    {
        if (!ok)
        {
            throw new ConfigException(field, message);
        }
    }
}

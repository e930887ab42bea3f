using DistClip.Config.Settings;

namespace DistClip.Config;

/// <summary>
/// A run as the user asked for it: every setting of <c>coordinator launch</c> and <c>serve</c>, from a
/// JSON config file and the command line. Each property is a setting (see <see cref="SettingAttribute"/>):
/// adding one here adds it to the command line, <c>--help</c>, JSON configs, the Helm chart's schema
/// and what workers receive. <see cref="Training"/> holds the ones every worker trains with.
/// </summary>
public sealed record RunConfig
{
    /// <summary>Worker processes; 0 = automatic: 2 on this machine, or the hostfile's slots.</summary>
    [Setting("worker processes, one per device", Min = 0, DefaultDoc = "2, or the hostfile's slots")]
    public int Workers { get; init; }

    /// <summary>An MPI-style hostfile (<c>host slots=N [port=P] [user=U] [gpus=LIST]</c>): start the workers there over ssh.</summary>
    [Setting("start workers over ssh on the hosts of FILE (lines: host slots=N [port=P] [user=U] [gpus=LIST], e.g. gpus=0,1,4,5)", InChart = false)]
    public string? Hostfile { get; init; }

    /// <summary>Extra ssh arguments, split on whitespace (e.g. <c>-i KEY -o UserKnownHostsFile=FILE</c>).</summary>
    [Setting("extra ssh arguments for --hostfile, e.g. \"-i KEY -o UserKnownHostsFile=FILE\"", InChart = false)]
    public string? SshOptions { get; init; }

    /// <summary>The command that starts a worker on a remote host (default: dotnet and this install's worker.dll).</summary>
    [Setting("command that runs the worker on a remote host", DefaultDoc = "dotnet <this install>/worker.dll", InChart = false)]
    public string? RemoteWorker { get; init; }

    /// <summary>The host name workers use to reach the coordinator (default: this host's name, or 127.0.0.1 for loopback-only runs).</summary>
    [Setting("host name workers use to reach the coordinator", DefaultDoc = "this host's name; 127.0.0.1 when every worker is local", InChart = false)]
    public string? AdvertiseHost { get; init; }

    /// <summary>The link stack of the workers this coordinator starts (a worker's <c>--link</c>; in the chart, <c>workers.link</c>).</summary>
    [Setting("link stack between the workers launch starts: direct (DistClip's HTTP/2 ends, fast) | grpc (stock Grpc.Net.Client and Kestrel, for proxies and meshes)",
        Choices = ["direct", "grpc"], InChart = false)]
    public string Link { get; init; } = "direct";

    [Setting("name of the run under the checkpoint directory", DefaultDoc = "a new one; with --resume latest, the newest run there",
        Pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]*$", PatternHint = "letters, digits, '-', '_' or '.', not starting with '.'", InChart = false)]
    public string? RunId { get; init; }

    [Setting("where summary.json and worker logs go", DefaultDoc = "runs/<run-id>", InChart = false)]
    public string? RunDir { get; init; }

    [Setting("shared storage for checkpoints", Pattern = ".", PatternHint = "a directory", InChart = false)]
    public string CheckpointDir { get; init; } = "checkpoints";

    [Setting("rank 0 checkpoints every N steps; 0 = only at the end", Min = 0)]
    public int CheckpointEvery { get; init; } = 100;

    /// <summary>Checkpoints in a row that may fail to be written (disk full, read-only storage) before the run stops; training goes on in between.</summary>
    [Setting("consecutive checkpoints that may fail to be written (disk full, read-only) before the run stops; training goes on in between", Min = 1)]
    public int CheckpointFailures { get; init; } = 3;

    [Setting("checkpoints kept", Min = 1)]
    public int Keep { get; init; } = 3;

    [Setting("latest | DIR: continue from a checkpoint (verified; the configuration must match)", InChart = false)]
    public string? Resume { get; init; }

    [Setting("lost workers replaced before the run fails", Min = 0)]
    public int MaxRestarts { get; init; } = 3;

    [Setting("seconds of silence after which a worker is dead", Name = "heartbeat-timeout", Positive = true, Max = 86400)]
    public double HeartbeatTimeoutSeconds { get; init; } = 15;

    [Setting("seconds one collective may take before it fails", Name = "collective-timeout", Positive = true, Max = 86400)]
    public double CollectiveTimeoutSeconds { get; init; } = 60;

    /// <summary>
    /// The progress watchdog: when no rank's (step, phase) has changed for this long, the rank holding
    /// the others up is lost (and killed). Longer than <see cref="CollectiveTimeoutSeconds"/>, so that
    /// ranks waiting in a collective time out and name the rank first; it must also cover the longest
    /// phase that advances no step (a checkpoint write, loading, rank 0's evaluation).
    /// </summary>
    [Setting("seconds with no rank progressing (step or phase) before the rank the others wait on is lost; above collective-timeout",
        Name = "step-timeout", Positive = true, Max = 86400)]
    public double StepTimeoutSeconds { get; init; } = 300;

    [SettingGroup]
    public TrainOptions Training { get; init; } = new();

    /// <summary>Refuses what is wrong with the settings themselves (the files they name are checked by the coordinator's preflight).</summary>
    public void Validate()
    {
        SettingTable<RunConfig>.CheckEach(this);
        Training.Validate(Math.Max(1, Workers));
    }

    /// <summary>The settings as given on a command line (<c>--name value</c> pairs) over a JSON config: the config first, the line overrides it.</summary>
    public static RunConfig FromArguments(IEnumerable<KeyValuePair<string, string>> pairs)
    {
        var config = new RunConfig();
        var overrides = new List<(Setting, string)>();
        foreach (var (name, value) in pairs)
        {
            if (name == "config")
            {
                config = SettingTable<RunConfig>.ApplyJson(config, value);
            }
            else
            {
                overrides.Add((SettingTable<RunConfig>.Find(name) ?? throw new ConfigException(name, "unknown setting"), value));
            }
        }

        foreach (var (setting, value) in overrides)
        {
            config = SettingTable<RunConfig>.Apply(config, setting, value);
        }

        return config;
    }
}

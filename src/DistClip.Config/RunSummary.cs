using System.Text.Json;
using System.Text.Json.Serialization;

namespace DistClip.Config;

/// <summary>What a finished run reports; written as <c>summary.json</c> in the run directory.</summary>
public sealed record RunSummary
{
    [JsonPropertyName("model")] public required string Model { get; init; }
    [JsonPropertyName("dataset")] public required string Dataset { get; init; }
    [JsonPropertyName("steps")] public long Steps { get; init; }
    [JsonPropertyName("global_batch")] public int GlobalBatch { get; init; }
    [JsonPropertyName("world_size")] public int WorldSize { get; init; }

    /// <summary><c>softmax</c> or <c>siglip</c>.</summary>
    [JsonPropertyName("loss")] public string Loss { get; init; } = "softmax";

    /// <summary>Samples per rank through the towers at once; 0 = the whole local batch (no accumulation).</summary>
    [JsonPropertyName("micro_batch")] public int MicroBatch { get; init; }
    [JsonPropertyName("samples_per_second")] public double SamplesPerSecond { get; init; }
    /// <summary>Samples per second after the first steps of the (last) launch, by the sum of step times.</summary>
    [JsonPropertyName("steady_samples_per_second")] public double? SteadySamplesPerSecond { get; init; }

    /// <summary>The phases of a step, in order: the keys of <see cref="PhaseSeconds"/>.</summary>
    public static readonly string[] PhaseNames = ["data", "forward", "all_gather", "loss", "backward", "all_reduce", "optimizer"];

    /// <summary>Mean seconds per step in each phase (rank 0), after the first steps of the launch.</summary>
    [JsonPropertyName("phase_seconds")] public Dictionary<string, double>? PhaseSeconds { get; init; }

    /// <summary>
    /// <see cref="PhaseSeconds"/> of every rank, indexed by rank (the last incarnation of a replaced
    /// one), means over the steps: a rank that waits in all_gather or all_reduce far longer than
    /// another is held up by a slower peer (waits that alternate between ranks from step to step show
    /// in every rank's mean). Set by the coordinator; absent from a single-process run.
    /// </summary>
    [JsonPropertyName("phase_seconds_by_rank")] public Dictionary<string, double>[]? PhaseSecondsByRank { get; init; }

    /// <summary>
    /// The keys of <see cref="WaitSeconds"/>: a step's all_gather and all_reduce waits split by cause.
    /// <c>exposed_communication</c>: what the communication itself added to the step (in each of the two
    /// phases, the wait of the rank that waited least, the last to arrive), the same on every rank;
    /// <c>peer_wait</c>: the rest of this rank's wait, spent waiting for slower ranks.
    /// </summary>
    public static readonly string[] WaitNames = ["exposed_communication", "peer_wait"];

    /// <summary>Mean seconds per step of <see cref="WaitNames"/> (rank 0), over the timed steps; absent from a single-process run.</summary>
    [JsonPropertyName("wait_seconds")] public Dictionary<string, double>? WaitSeconds { get; init; }

    /// <summary><see cref="WaitSeconds"/> of every rank, indexed by rank, as <see cref="PhaseSecondsByRank"/>. Set by the coordinator.</summary>
    [JsonPropertyName("wait_seconds_by_rank")] public Dictionary<string, double>[]? WaitSecondsByRank { get; init; }
    [JsonPropertyName("wall_seconds")] public double WallSeconds { get; init; }
    [JsonPropertyName("final_loss")] public double FinalLoss { get; init; }
    [JsonPropertyName("zero_shot_top1")] public double? ZeroShotTop1 { get; init; }
    [JsonPropertyName("zero_shot_top5")] public double? ZeroShotTop5 { get; init; }
    [JsonPropertyName("zero_shot_samples")] public int? ZeroShotSamples { get; init; }
    [JsonPropertyName("recall_at_1")] public RecallPair? RecallAt1 { get; init; }
    [JsonPropertyName("recall_at_5")] public RecallPair? RecallAt5 { get; init; }
    [JsonPropertyName("recall_at_10")] public RecallPair? RecallAt10 { get; init; }
    /// <summary>SHA-256 of the final parameters, the same on every rank (the coordinator checks).</summary>
    [JsonPropertyName("parameters_sha256")] public string? ParametersSha256 { get; init; }

    /// <summary>SHA-256 chained over each step's global batch (its sample indices in rank order): equal iff the data order was.</summary>
    [JsonPropertyName("data_order_sha256")] public string? DataOrderSha256 { get; init; }
    [JsonPropertyName("restarts")] public int Restarts { get; init; }


    /// <summary>Steps whose global gradient norm or loss was not finite: no update was applied (rank 0's count, over the run).</summary>
    [JsonPropertyName("skipped_steps")] public long SkippedSteps { get; init; }

    /// <summary>Checkpoints rank 0 could not write (disk full, read-only storage) in its last process; training went on.</summary>
    [JsonPropertyName("checkpoint_failures")] public int CheckpointFailures { get; init; }

    /// <summary>
    /// Steps trained twice because a generation restarted below the most steps any rank had
    /// completed (set by the coordinator): at most the interrupted one per lost worker when a
    /// survivor hands over its state, up to the checkpoint interval when the run falls back to storage.
    /// </summary>
    [JsonPropertyName("steps_redone")] public long StepsRedone { get; init; }

    /// <summary>
    /// Each worker's peak resident set size in bytes, indexed by rank, as the worker read it (VmHWM)
    /// when it finished: the last incarnation of a replaced rank. 0 where a worker could not tell.
    /// Set by the coordinator; absent from a single-process run.
    /// </summary>
    [JsonPropertyName("peak_rss_bytes")] public long[]? PeakRssBytes { get; init; }

    /// <summary>The largest of <see cref="PeakRssBytes"/>.</summary>
    [JsonPropertyName("peak_rss_bytes_max")] public long? PeakRssBytesMax { get; init; }
    [JsonPropertyName("skipped_samples")] public long SkippedSamples { get; init; }
    [JsonPropertyName("skipped_by_reason")] public Dictionary<string, long> SkippedByReason { get; init; } = [];
    [JsonPropertyName("history")] public List<HistoryPoint> History { get; init; } = [];

    // A run resumed at its last step trains nothing, and a rate over no time is not a number:
    // write such values as "NaN" / "Infinity" rather than fail at the end of a run.
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    public static RunSummary FromJson(string json) =>
        JsonSerializer.Deserialize<RunSummary>(json, Options) ?? throw new InvalidDataException("no run summary in the document");

    public void Write(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        // Written beside and renamed, so a reader never sees half a summary.
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, ToJson());
        File.Move(tmp, path, overwrite: true);
    }

    public static RunSummary Read(string path) =>
        JsonSerializer.Deserialize<RunSummary>(File.ReadAllText(path), Options)
        ?? throw new InvalidDataException($"{path} holds no run summary");
}

public sealed record RecallPair(
    [property: JsonPropertyName("image_to_text")] double ImageToText,
    [property: JsonPropertyName("text_to_image")] double TextToImage);

/// <summary>One logged point of the training curve (every log interval and at each evaluation).</summary>
public sealed record HistoryPoint(
    [property: JsonPropertyName("step")] long Step,
    [property: JsonPropertyName("loss")] double Loss,
    [property: JsonPropertyName("lr")] double LearningRate,
    [property: JsonPropertyName("samples_per_second")] double SamplesPerSecond,
    [property: JsonPropertyName("zero_shot_top1")] double? ZeroShotTop1);

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using DistClip.Checkpoints;
using DistClip.Config;

namespace DistClip.Training;

/// <summary>
/// The training state a checkpoint's <c>state.json</c> holds beside the checkpoint library's own
/// <c>step</c>, <c>config</c> and <c>config_hash</c>. <see cref="TrainingSession"/> writes it and reads
/// it back to resume; the <c>distclip</c> CLI reads <see cref="ModelConfig"/> and <see cref="Tokenizer"/>
/// to rebuild the model. The snake_case names are the keys checkpoints have always had: renaming one
/// would strand every existing checkpoint.
/// </summary>
public sealed record CheckpointState
{
    /// <summary>The sampler cursor of the next batch: its epoch…</summary>
    [JsonPropertyName("epoch")]
    public required int Epoch { get; init; }

    /// <summary>…and its batch within that epoch.</summary>
    [JsonPropertyName("batch_in_epoch")]
    public required long BatchInEpoch { get; init; }

    /// <summary>libtorch's CPU generator state (<see cref="RngState.Capture"/>), base64 in the file.</summary>
    [JsonPropertyName("rng")]
    public required byte[] Rng { get; init; }

    /// <summary>Samples trained on so far, over all ranks.</summary>
    [JsonPropertyName("samples")]
    public required long Samples { get; init; }

    /// <summary>Seconds spent in steps so far (for samples per second across resumes).</summary>
    [JsonPropertyName("train_seconds")]
    public required double TrainSeconds { get; init; }

    /// <summary>The training curve so far.</summary>
    [JsonPropertyName("history")]
    public IReadOnlyList<HistoryPoint> History { get; init; } = [];

    /// <summary>Steps skipped so far because their gradient norm or loss was not finite (absent, 0, in older checkpoints).</summary>
    [JsonPropertyName("skipped_steps")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] // a run that never skipped writes what it always wrote
    public long SkippedSteps { get; init; }

    /// <summary>The chained SHA-256 of every batch's sample indices so far, hex in the file.</summary>
    [JsonPropertyName("data_order")]
    public required string DataOrder { get; init; }

    /// <summary>The model's own <c>ClipConfig</c> JSON, so the checkpoint loads without the run's model file (absent in the oldest checkpoints).</summary>
    [JsonPropertyName("model_config")]
    public JsonElement? ModelConfig { get; init; }

    /// <summary>
    /// The tokenizer's <see cref="Data.ITextTokenizer.Name"/>: <c>r50k</c> or <c>clip-bpe</c>; checkpoints
    /// from before the names were unified say <c>r50k_base</c> or <c>openai-clip-bpe</c>, and the oldest
    /// nothing (they were r50k). <see cref="TokenizerName"/> maps them.
    /// </summary>
    [JsonPropertyName("tokenizer")]
    public string? Tokenizer { get; init; }

    /// <summary>Today's name of the tokenizer this checkpoint was trained with, whatever its age.</summary>
    [JsonIgnore]
    public string TokenizerName => Data.TokenizerSpec.CanonicalName(Tokenizer ?? Data.TokenizerSpec.R50k);

    // A diverging run's curve holds NaN or infinite losses: written as "NaN" / "Infinity", never a failed checkpoint.
    private static readonly JsonSerializerOptions Options = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The document handed to <see cref="CheckpointStore.Commit"/>.</summary>
    public JsonObject ToJson() => JsonSerializer.SerializeToNode(this, Options)!.AsObject();

    /// <summary>Reads the training state of a verified checkpoint.</summary>
    /// <exception cref="CorruptCheckpointException">state.json lacks a field or holds one of the wrong type.</exception>
    public static CheckpointState Of(ResolvedCheckpoint checkpoint) => FromJson(checkpoint.State, checkpoint.Directory);

    /// <summary>Reads a state document (<see cref="ResolvedCheckpoint.State"/>) of the checkpoint in <paramref name="directory"/>.</summary>
    /// <exception cref="CorruptCheckpointException">A field is missing or of the wrong type.</exception>
    public static CheckpointState FromJson(JsonObject state, string directory)
    {
        try
        {
            var read = state.Deserialize<CheckpointState>(Options)
                ?? throw new CorruptCheckpointException(directory, CheckpointFiles.State, "holds no training state");
            // A JSON null reads as a Null element; the field means "not recorded" either way.
            return read.ModelConfig is { ValueKind: JsonValueKind.Null } ? read with { ModelConfig = null } : read;
        }
        catch (JsonException e)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.State, $"is not a training state ({e.Message})");
        }
    }
}

using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;

namespace DistClip.Training;

/// <summary>
/// Everything one training run needs, defined once. Field names are the ones users see in errors,
/// in JSON configs (snake_case of these) and on the command line (kebab-case).
/// </summary>
public sealed record TrainOptions
{
    /// <summary>A built-in model name (see <see cref="ClipConfig.BuiltInNames"/>) or a path to a model JSON.</summary>
    public string Model { get; init; } = "clip-micro";

    /// <summary>
    /// The caption tokenizer: <c>r50k</c> (GPT-2 BPE, shipped) or <c>clip-bpe:PATH</c> (OpenAI's CLIP BPE
    /// from its vocabulary file, for models with OpenAI's 49,408-id vocabulary).
    /// </summary>
    public string Tokenizer { get; init; } = "r50k";

    /// <summary>Start from these weights (an OpenAI / open_clip state dict, PyTorch or safetensors) instead of the seed.</summary>
    public string? Init { get; init; }

    /// <summary>
    /// <c>fashion-mnist</c>, <c>wds:PATTERN</c> (tar shards), <c>csv:FILE</c> or <c>synthetic:N</c>
    /// (N generated samples, 1 to 100,000,000: for benchmarks and smoke runs).
    /// </summary>
    public string Dataset { get; init; } = "fashion-mnist";

    public int Steps { get; init; } = 300;

    /// <summary>
    /// Stop this launch after step N (with a checkpoint) although the schedule runs to
    /// <see cref="Steps"/>; <c>--resume latest</c> continues it. 0 = run to the end.
    /// For jobs that must fit a scheduler's time limit.
    /// </summary>
    public int StopAtStep { get; init; }
    public int GlobalBatch { get; init; } = 256;
    public int Seed { get; init; } = 42;

    /// <summary>Intra-op threads for libtorch in this process; 0 = leave libtorch's default.</summary>
    public int Threads { get; init; }

    /// <summary><c>auto</c> (CUDA when available), <c>cpu</c> or <c>cuda</c>.</summary>
    public string Device { get; init; } = "auto";

    public OptimizerSettings Optimizer { get; init; } = new();

    /// <summary><c>softmax</c> (CLIP's InfoNCE) or <c>siglip</c> (pairwise sigmoid with a learnable bias).</summary>
    public LossKind Loss { get; init; } = LossKind.Softmax;

    /// <summary>
    /// Samples per worker pushed through the towers at once; 0 = the whole local batch. Smaller values
    /// accumulate gradients over feature-cached micro-batches: the same update, less activation memory.
    /// </summary>
    public int MicroBatch { get; init; }

    /// <summary>Rows and columns of one tile of logits in the loss stage (its memory is O(chunk²)).</summary>
    public int LossChunk { get; init; } = StepSettings.DefaultLossChunk;

    /// <summary>The step's loss settings (a method: the JSON of these options has only settings).</summary>
    public StepSettings ToStepSettings() => new() { Loss = Loss, MicroBatch = MicroBatch, LossChunk = LossChunk };

    /// <summary>Evaluate zero-shot accuracy every N steps (0 = only at the end).</summary>
    public int EvalEvery { get; init; }

    /// <summary>How many test samples zero-shot evaluation uses; 0 = the whole split.</summary>
    public int EvalSamples { get; init; }

    /// <summary>How many test pairs retrieval recall uses (a B×B similarity matrix; 0 disables).</summary>
    public int RetrievalSamples { get; init; } = 1000;

    public int DecodeThreads { get; init; } = 1;
    public int Prefetch { get; init; } = 4;
    public int LogEvery { get; init; } = 10;

    /// <summary>
    /// Refuses a bad configuration before any work starts, naming the field and the fix.
    /// Dataset existence and the model's own fields are checked where they are opened.
    /// </summary>
    public void Validate(int worldSize = 1)
    {
        Require(Steps > 0, "steps", $"must be at least 1 (got {Steps})");
        Require(StopAtStep >= 0 && StopAtStep <= Steps, "stop_at_step", $"must be between 0 (off) and steps {Steps} (got {StopAtStep})");
        Require(GlobalBatch > 0, "global_batch", $"must be at least 1 (got {GlobalBatch})");
        Require(worldSize > 0, "workers", $"must be at least 1 (got {worldSize})");
        Require(GlobalBatch % worldSize == 0, "global_batch",
            $"{GlobalBatch} is not divisible by {worldSize} workers; choose a multiple of {worldSize}");
        Require(Threads >= 0, "threads", $"must be 0 (libtorch default) or more (got {Threads})");
        Require(Device is "auto" or "cpu" or "cuda", "device", $"'{Device}' is not one of auto, cpu, cuda");
        Require(Enum.IsDefined(Loss), "loss", $"'{Loss}' is not softmax or siglip");
        Require(MicroBatch >= 0, "micro_batch", $"must be 0 (the whole local batch) or more (got {MicroBatch})");
        Require(LossChunk is >= 1 and <= 1 << 16, "loss_chunk", $"must be between 1 and 65536 (got {LossChunk})");
        Require(EvalEvery >= 0, "eval_every", $"must be 0 or more (got {EvalEvery})");
        Require(EvalSamples >= 0, "eval_samples", $"must be 0 or more (got {EvalSamples})");
        Require(RetrievalSamples >= 0, "retrieval_samples", $"must be 0 or more (got {RetrievalSamples})");
        Require(DecodeThreads >= 1, "decode_threads", $"must be at least 1 (got {DecodeThreads})");
        Require(Prefetch >= 1, "prefetch", $"must be at least 1 (got {Prefetch})");
        Require(LogEvery >= 1, "log_every", $"must be at least 1 (got {LogEvery})");
        Require(TokenizerSpec.IsValid(Tokenizer, out string tokenizerError), "tokenizer", tokenizerError);
        if (SyntheticDataset.IsSpec(Dataset))
        {
            try
            {
                SyntheticDataset.CountOf(Dataset);
            }
            catch (DataException e)
            {
                throw new ConfigException("dataset", e.Message);
            }
        }
        else
        {
            Require(Dataset == "fashion-mnist" || Dataset.StartsWith("wds:", StringComparison.Ordinal) || Dataset.StartsWith("csv:", StringComparison.Ordinal),
                "dataset", $"'{Dataset}' is not fashion-mnist, wds:PATTERN, csv:FILE or synthetic:N");
        }

        var o = Optimizer;
        Require(o.LearningRate > 0 && double.IsFinite(o.LearningRate), "lr", $"must be a positive number (got {o.LearningRate})");
        Require(o.MinLearningRate >= 0 && o.MinLearningRate <= o.LearningRate, "min_lr", $"must be between 0 and lr (got {o.MinLearningRate})");
        Require(o.WarmupSteps >= 0, "warmup_steps", $"must be 0 or more (got {o.WarmupSteps})");
        Require(o.WeightDecay >= 0, "weight_decay", $"must be 0 or more (got {o.WeightDecay})");
        Require(o.Beta1 is >= 0 and < 1, "beta1", $"must be in [0, 1) (got {o.Beta1})");
        Require(o.Beta2 is >= 0 and < 1, "beta2", $"must be in [0, 1) (got {o.Beta2})");
        Require(o.Eps > 0, "eps", $"must be positive (got {o.Eps})");
    }

    private static void Require(bool ok, string field, string message)
    {
        if (!ok)
        {
            throw new ConfigException(field, message);
        }
    }
}

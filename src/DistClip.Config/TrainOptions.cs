using DistClip.Config.Settings;

namespace DistClip.Config;

/// <summary>
/// The settings of the training itself, as every worker runs them: one group of
/// <see cref="RunConfig"/>. Each property is a setting (see <see cref="SettingAttribute"/>): its name,
/// default, help and bounds are declared here and nowhere else.
/// </summary>
public sealed record TrainOptions
{
    /// <summary>A built-in model name (see <see cref="ClipConfig.BuiltInNames"/>) or a path to a model JSON.</summary>
    [Setting("built-in model name or model JSON path", Pattern = ".", PatternHint = "a model name or path")]
    public string Model { get; init; } = "clip-micro";

    /// <summary><c>r50k</c> (GPT-2 BPE), <c>clip-bpe</c> (OpenAI's CLIP BPE, shipped) or <c>clip-bpe:PATH</c> (its vocabulary file).</summary>
    [Setting("r50k (GPT-2 BPE) | clip-bpe (OpenAI's CLIP BPE, 49,408 ids) | clip-bpe:PATH (that vocabulary from a file)",
        Pattern = "^(r50k|clip-bpe|clip-bpe:.+)$", PatternHint = "r50k, clip-bpe or clip-bpe:PATH")]
    public string Tokenizer { get; init; } = "r50k";

    /// <summary>Start from these weights (an OpenAI / open_clip state dict, PyTorch or safetensors) instead of the seed.</summary>
    [Setting("start from an OpenAI / open_clip state dict (PyTorch or safetensors) instead of the seed", Resumable = true)]
    public string? Init { get; init; }

    /// <summary><c>fashion-mnist</c>, <c>wds:PATTERN</c> (tar shards), <c>csv:FILE</c> or <c>synthetic:N</c> (1 to 100,000,000 generated samples).</summary>
    [Setting("fashion-mnist | wds:PATTERN | csv:FILE | synthetic:N (N generated samples, 1 to 100000000)",
        Pattern = "^(fashion-mnist|wds:.+|csv:.+|synthetic:0*([1-9][0-9]{0,7}|100000000))$",
        PatternHint = "fashion-mnist, wds:PATTERN, csv:FILE or synthetic:N with N from 1 to 100,000,000")]
    public string Dataset { get; init; } = "fashion-mnist";

    [Setting("optimizer steps", Min = 1, Resumable = true)]
    public int Steps { get; init; } = 300;

    /// <summary>Steps of this launch that stop early (0 = run to <see cref="Steps"/>), for jobs that must fit a scheduler's time limit.</summary>
    [Setting("stop this launch after step N (with a checkpoint); --resume latest continues; 0 = run to the end", Min = 0, Resumable = true)]
    public int StopAtStep { get; init; }

    [Setting("samples per step over all workers; a multiple of the workers", Min = 1)]
    public int GlobalBatch { get; init; } = 256;

    [Setting("seed for weights, data order and captions", Min = 0)]
    public int Seed { get; init; } = 42;

    /// <summary>Intra-op threads for libtorch in each worker; 0 = the worker's cores shared by the workers on its host.</summary>
    [Setting("libtorch threads per worker; 0 = the worker's CPUs (its cgroup limit) divided among the workers on its host", Min = 0, Max = 1024, Resumable = true)]
    public int Threads { get; init; }

    /// <summary><c>auto</c> (CUDA when available), <c>cpu</c> or <c>cuda</c>.</summary>
    [Setting("auto | cpu | cuda; with auto or cuda each worker gets its own GPU (CUDA_VISIBLE_DEVICES)", Choices = ["auto", "cpu", "cuda"], Resumable = true)]
    public string Device { get; init; } = "auto";

    [Setting("softmax (CLIP's InfoNCE) | siglip (pairwise sigmoid with a learnable bias)")]
    public LossKind Loss { get; init; } = LossKind.Softmax;

    /// <summary>
    /// Samples per worker pushed through the towers at once; 0 = the whole local batch. Smaller values
    /// accumulate gradients over feature-cached micro-batches: the same update, less activation memory.
    /// </summary>
    [Setting("samples per worker through the towers at once, 0 = the whole local batch; smaller accumulates over feature-cached micro-batches",
        Min = 0, Resumable = true)]
    public int MicroBatch { get; init; }

    /// <summary>Rows and columns of one tile of logits in the loss stage (its memory is O(chunk²)).</summary>
    [Setting("rows and columns of one tile of logits in the loss stage", Min = 1, Max = 65536, Resumable = true)]
    public int LossChunk { get; init; } = DefaultLossChunk;

    /// <summary>2048: a tile of logits is 16 MiB of float32, whatever the batch.</summary>
    public const int DefaultLossChunk = 2048;

    /// <summary>Target size of one gradient all-reduce (PyTorch DDP's bucket_cap_mb): buckets hold whole parameters.</summary>
    [Setting("MiB of gradients per all-reduce bucket (like DDP's bucket_cap_mb)", Min = 1, Max = 1024, Resumable = true)]
    public int BucketMib { get; init; } = 16;

    /// <summary>Largest payload of one collective frame; the direct link's frames hold 1 MiB.</summary>
    [Setting("KiB of payload per collective frame on the links between workers", Min = 4, Max = 1024, Resumable = true)]
    public int ChunkKib { get; init; } = 1024;

    /// <summary>
    /// Steps in a row whose global gradient norm or loss is not finite that are skipped (no update,
    /// the same on every rank) before the run stops as diverged.
    /// </summary>
    [Setting("consecutive steps with a non-finite gradient norm or loss that are skipped (no update) before the run stops as diverged",
        Min = 1, Resumable = true)]
    public int MaxSkippedSteps { get; init; } = 3;

    [SettingGroup]
    public OptimizerSettings Optimizer { get; init; } = new();

    [Setting("zero-shot evaluation every N steps, 0 = only at the end", Min = 0, Resumable = true)]
    public int EvalEvery { get; init; }

    [Setting("held-out samples for zero-shot accuracy, 0 = all", Min = 0, Resumable = true)]
    public int EvalSamples { get; init; }

    /// <summary>How many test pairs retrieval recall uses (a B×B similarity matrix; 0 disables).</summary>
    [Setting("held-out pairs for retrieval recall, 0 = off", Min = 0, Resumable = true)]
    public int RetrievalSamples { get; init; } = 1000;

    [Setting("image decoding threads per worker", Min = 1, Max = 256, Resumable = true)]
    public int DecodeThreads { get; init; } = 1;

    [Setting("batches loaded ahead of the model (fewer where this many would hold over 256 MiB of pixels)", Min = 1, Max = 64, Resumable = true)]
    public int Prefetch { get; init; } = 4;

    [Setting("progress line every N steps when output is not a terminal", Min = 1, Resumable = true)]
    public int LogEvery { get; init; } = 10;

    /// <summary>The settings that may differ when a run resumes (the names a checkpoint's config records).</summary>
    public static readonly IReadOnlySet<string> ResumableChanges = SettingTable<TrainOptions>.Settings
        .Where(s => s.Attribute.Resumable)
        .Select(s => Setting.Words(s.PropertyName, '_')) // a checkpoint's config.json names properties, not settings
        .ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// Refuses a bad configuration before any work starts, naming the field and the fix: each
    /// setting's own bounds, then the rules between settings. Whether files exist is checked where
    /// they are opened (the coordinator's preflight, before any worker starts).
    /// </summary>
    public void Validate(int worldSize = 1)
    {
        SettingTable<TrainOptions>.CheckEach(this);
        Require(worldSize > 0, "workers", $"must be at least 1 (got {worldSize})");
        Require(StopAtStep <= Steps, "stop_at_step", $"must be between 0 (off) and steps {Steps} (got {StopAtStep})");
        Require(GlobalBatch % worldSize == 0, "global_batch",
            $"{GlobalBatch} is not divisible by {worldSize} workers; choose a multiple of {worldSize}");
        Require(Optimizer.MinLearningRate <= Optimizer.LearningRate, "min_lr", $"must be between 0 and lr (got {Optimizer.MinLearningRate})");
    }

    private static void Require(bool ok, string field, string message)
    {
        if (!ok)
        {
            throw new ConfigException(field, message);
        }
    }
}

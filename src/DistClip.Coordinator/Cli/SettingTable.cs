using System.Globalization;
using System.Text.Json;
using DistClip.Model;
using DistClip.Training;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;

namespace DistClip.Coordinator.Cli;

/// <summary>
/// Every setting of a run a user can give, defined once: its command-line name (<c>--global-batch</c>),
/// its JSON name (<c>global_batch</c>) and how it changes <see cref="LaunchSettings"/>. A JSON config
/// is applied first and the command line overrides it.
/// </summary>
internal static class SettingTable
{
    internal sealed record Setting(string Name, string Help, Func<LaunchSettings, string, LaunchSettings> Apply)
    {
        public string JsonName => Name.Replace('-', '_');
    }

    public static readonly IReadOnlyList<Setting> Settings =
    [
        new("workers", "worker processes, one per device (default 2, or the hostfile's slots)", (o, v) => o with { Workers = Int("workers", v) }),
        new("hostfile", "start workers over ssh on the hosts of FILE (lines: host slots=N [port=P] [user=U] [gpus=LIST], e.g. gpus=0,1,4,5)", (o, v) => o with { Hostfile = v }),
        new("ssh-options", "extra ssh arguments for --hostfile, e.g. \"-i KEY -o UserKnownHostsFile=FILE\"", (o, v) => o with { SshOptions = v }),
        new("remote-worker", "command that runs the worker on a remote host (default: dotnet <this install>/worker.dll)", (o, v) => o with { RemoteWorker = v }),
        new("advertise-host", "host name workers use to reach the coordinator (default: this host's name)", (o, v) => o with { AdvertiseHost = v }),
        new("run-id", "name of the run under the checkpoint directory (default: a new one; with --resume latest, the newest run there)", (o, v) => o with { RunId = v }),
        new("run-dir", "where summary.json and worker logs go (default runs/<run-id>)", (o, v) => o with { RunDir = v }),
        new("checkpoint-dir", "shared storage for checkpoints (default checkpoints)", (o, v) => o with { CheckpointDir = v }),
        new("checkpoint-every", "rank 0 checkpoints every N steps; 0 = only at the end (default 100)", (o, v) => o with { CheckpointEvery = Int("checkpoint-every", v) }),
        new("keep", "checkpoints kept (default 3)", (o, v) => o with { Keep = Int("keep", v) }),
        new("resume", "latest | DIR: continue from a checkpoint (verified; the configuration must match)", (o, v) => o with { Resume = v }),
        new("max-restarts", "lost workers replaced before the run fails (default 3)", (o, v) => o with { MaxRestarts = Int("max-restarts", v) }),
        new("heartbeat-timeout", "seconds of silence after which a worker is dead (default 15)", (o, v) => o with { HeartbeatTimeoutSeconds = Real("heartbeat-timeout", v) }),
        new("collective-timeout", "seconds one collective may take before it fails (default 60)", (o, v) => o with { CollectiveTimeoutSeconds = Real("collective-timeout", v) }),
        new("stop-at-step", "stop this launch after step N (with a checkpoint); --resume latest continues", (o, v) => o with { Training = o.Training with { StopAtStep = Int("stop-at-step", v) } }),
        new("model", "built-in model name or model JSON path (default clip-micro)", (o, v) => o with { Training = o.Training with { Model = v } }),
        new("tokenizer", "r50k (GPT-2 BPE, default) | clip-bpe (OpenAI's CLIP BPE, vocabulary shipped) | clip-bpe:PATH (your own copy of its vocabulary file)", (o, v) => o with { Training = o.Training with { Tokenizer = v } }),
        new("init", "start from an OpenAI / open_clip state dict (PyTorch or safetensors) instead of the seed", (o, v) => o with { Training = o.Training with { Init = v } }),
        new("dataset", "fashion-mnist | wds:PATTERN | csv:FILE | synthetic:N (N generated samples, for benchmarks) (default fashion-mnist)", (o, v) => o with { Training = o.Training with { Dataset = v } }),
        new("steps", "optimizer steps (default 300)", (o, v) => o with { Training = o.Training with { Steps = Int("steps", v) } }),
        new("global-batch", "samples per step over all workers (default 256)", (o, v) => o with { Training = o.Training with { GlobalBatch = Int("global-batch", v) } }),
        new("seed", "seed for weights, data order and captions (default 42)", (o, v) => o with { Training = o.Training with { Seed = Int("seed", v) } }),
        new("threads", "libtorch threads per process (default: cores / workers)", (o, v) => o with { Training = o.Training with { Threads = Int("threads", v) } }),
        new("device", "auto | cpu | cuda (default auto); with auto or cuda each worker gets its own GPU (CUDA_VISIBLE_DEVICES)", (o, v) => o with { Training = o.Training with { Device = v } }),
        new("loss", "softmax (CLIP's InfoNCE, default) | siglip (pairwise sigmoid with a learnable bias)", (o, v) => o with { Training = o.Training with { Loss = LossKindOf(v) } }),
        new("micro-batch", "samples per worker through the towers at once, 0 = the whole local batch (default 0); smaller accumulates over feature-cached micro-batches", (o, v) => o with { Training = o.Training with { MicroBatch = Int("micro-batch", v) } }),
        new("loss-chunk", "rows and columns of one tile of logits in the loss stage (default 2048)", (o, v) => o with { Training = o.Training with { LossChunk = Int("loss-chunk", v) } }),
        new("optimizer", "adamw | sgd (default adamw)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { Kind = OptimizerKindOf(v) } } }),
        new("lr", "peak learning rate (default 5e-4)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { LearningRate = Real("lr", v) } } }),
        new("min-lr", "learning rate at the end of the cosine decay (default 0)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { MinLearningRate = Real("min-lr", v) } } }),
        new("warmup-steps", "linear warm-up steps (default 10)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { WarmupSteps = Int("warmup-steps", v) } } }),
        new("weight-decay", "AdamW decay on weights of rank >= 2 (default 0.2)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { WeightDecay = Real("weight-decay", v) } } }),
        new("beta1", "AdamW beta1 (default 0.9)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { Beta1 = Real("beta1", v) } } }),
        new("beta2", "AdamW beta2 (default 0.98)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { Beta2 = Real("beta2", v) } } }),
        new("eps", "AdamW epsilon (default 1e-6)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { Eps = Real("eps", v) } } }),
        new("grad-clip", "global gradient-norm clip, 0 = off (default 1.0)", (o, v) => o with { Training = o.Training with { Optimizer = o.Training.Optimizer with { GradClipNorm = Real("grad-clip", v) } } }),
        new("eval-every", "zero-shot evaluation every N steps, 0 = only at the end (default 0)", (o, v) => o with { Training = o.Training with { EvalEvery = Int("eval-every", v) } }),
        new("eval-samples", "held-out samples for zero-shot accuracy, 0 = all (default 0)", (o, v) => o with { Training = o.Training with { EvalSamples = Int("eval-samples", v) } }),
        new("retrieval-samples", "held-out pairs for retrieval recall, 0 = off (default 1000)", (o, v) => o with { Training = o.Training with { RetrievalSamples = Int("retrieval-samples", v) } }),
        new("decode-threads", "image decoding threads per worker (default 1)", (o, v) => o with { Training = o.Training with { DecodeThreads = Int("decode-threads", v) } }),
        new("prefetch", "batches loaded ahead of the model (default 4; fewer where 4 would hold over 256 MiB of pixels)", (o, v) => o with { Training = o.Training with { Prefetch = Int("prefetch", v) } }),
        new("log-every", "progress line every N steps when output is not a terminal (default 10)", (o, v) => o with { Training = o.Training with { LogEvery = Int("log-every", v) } }),
    ];

    public static Setting? Find(string name) => Settings.FirstOrDefault(s => s.Name == name);

    /// <summary>Applies a JSON config file; unknown keys are refused by name.</summary>
    public static LaunchSettings ApplyJson(LaunchSettings options, string path)
    {
        if (!File.Exists(path))
        {
            throw new ConfigException("config", $"{path} does not exist");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new ConfigException("config", $"{path} is not valid JSON: {e.Message}");
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ConfigException("config", $"{path} must hold a JSON object");
            }

            foreach (var property in doc.RootElement.EnumerateObject())
            {
                var setting = Settings.FirstOrDefault(s => s.JsonName == property.Name)
                    ?? throw new ConfigException(property.Name, $"unknown setting in {path}; known: {string.Join(", ", Settings.Select(s => s.JsonName))}");
                string value = property.Value.ValueKind switch
                {
                    JsonValueKind.String => property.Value.GetString()!,
                    JsonValueKind.Number => property.Value.GetRawText(),
                    _ => throw new ConfigException(property.Name, $"expected a string or a number in {path}"),
                };
                options = setting.Apply(options, value);
            }
        }

        return options;
    }

    private static int Int(string field, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
            ? n
            : throw new ConfigException(field, $"'{value}' is not a whole number");

    private static double Real(string field, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && double.IsFinite(x)
            ? x
            : throw new ConfigException(field, $"'{value}' is not a number");

    private static LossKind LossKindOf(string value) => value switch
    {
        "softmax" => LossKind.Softmax,
        "siglip" => LossKind.Siglip,
        _ => throw new ConfigException("loss", $"'{value}' is not softmax or siglip"),
    };

    private static OptimizerKind OptimizerKindOf(string value) => value switch
    {
        "adamw" => OptimizerKind.AdamW,
        "sgd" => OptimizerKind.Sgd,
        _ => throw new ConfigException("optimizer", $"'{value}' is not adamw or sgd"),
    };
}

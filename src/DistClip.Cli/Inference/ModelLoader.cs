using System.Text.Json;
using DistClip.Checkpoints;
using DistClip.Cli.CommandLine;
using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Model.Import;
using DistClip.Training;
using DistClip.Training.Checkpointing;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace DistClip.Cli.Inference;

/// <summary>
/// Builds a <see cref="LoadedModel"/> from a checkpoint or from published weights. Every way this can
/// fail becomes a <see cref="RefusedException"/> whose message names the file and what to do.
/// </summary>
internal static partial class ModelLoader
{
    public static LoadedModel Load(ModelSourceOptions options, ILogger logger, CancellationToken ct)
    {
        NativeAllocator.Configure();
        TorchRuntime.SetThreads(options.Threads);
        var device = TorchRuntime.SelectDevice(options.Device);
        var loaded = options.Pretrained is { } file
            ? LoadPretrained(file, options, device, logger)
            : LoadCheckpoint(options.Checkpoint ?? throw new UsageException("a model is required: --checkpoint DIR or --pretrained FILE"), options, device, logger, ct);
        loaded.Model.eval();
        return loaded;
    }

    /// <summary>A step directory as given, or a run directory's latest verified checkpoint (stepping back past corrupt ones, with warnings).</summary>
    public static ResolvedCheckpoint ResolveCheckpoint(string path, ILogger logger, CancellationToken ct)
    {
        // "run/" and "run" name the same directory; the run id is its last component.
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        try
        {
            if (File.Exists(Path.Combine(full, CheckpointFiles.State)))
            {
                return CheckpointStore.ResolveDirectory(full, ct);
            }

            if (Directory.Exists(full) && (File.Exists(Path.Combine(full, "latest")) || Directory.EnumerateDirectories(full, "step-*").Any()))
            {
                var store = new CheckpointStore(new CheckpointOptions(Path.GetDirectoryName(full)!, Path.GetFileName(full)), logger);
                return store.ResolveLatest(ct) ?? throw new RefusedException($"{full} holds no checkpoint");
            }
        }
        catch (CheckpointNotFoundException e)
        {
            throw new RefusedException($"no usable checkpoint at {full}: {e.Message}", e);
        }
        catch (CorruptCheckpointException e)
        {
            throw new RefusedException($"checkpoint {full} is corrupt: {e.Message}", e);
        }

        throw new RefusedException(
            Directory.Exists(full)
                ? $"{full} is neither a checkpoint step directory (with {CheckpointFiles.State}) nor a run directory (with latest or step-* directories)"
                : $"checkpoint directory {full} does not exist");
    }

    private static LoadedModel LoadCheckpoint(string path, ModelSourceOptions options, TorchSharp.torch.Device device, ILogger logger, CancellationToken ct)
    {
        var checkpoint = ResolveCheckpoint(path, logger, ct);
        foreach (string warning in checkpoint.Warnings)
        {
            LogCheckpointWarning(logger, warning);
        }

        CheckpointState state;
        try
        {
            state = CheckpointState.Of(checkpoint);
        }
        catch (CorruptCheckpointException e)
        {
            throw new RefusedException($"checkpoint {checkpoint.Directory} is corrupt: {e.Message}", e);
        }

        var config = options.Config ?? CheckpointModelConfig(checkpoint, state, options.Model);
        var tokenizer = OpenTokenizer(state.TokenizerName, options.Vocabulary, $"checkpoint {checkpoint.Directory} was trained with tokenizer '{state.Tokenizer}'");
        EnsureVocabulary(config, tokenizer);

        var model = new ClipModel(config);
        try
        {
            using var weights = checkpoint.Open(CheckpointFiles.Model);
            ModelState.Load(model, weights);
        }
        catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
        {
            model.Dispose();
            throw new RefusedException($"the weights in {checkpoint.Directory} do not fit model '{config.Name}' ({e.Message}); pass the config it was trained with as --model", e);
        }

        model.to(device);
        string runId = Path.GetFileName(Path.GetDirectoryName(checkpoint.Directory)!);
        var identity = new ModelIdentity(config.Name, ModelIdentity.FromCheckpoint, checkpoint.Directory, runId, checkpoint.Step,
            ModelIdentity.HashParameters(model), config.EmbedDim, tokenizer.Name, (tokenizer as OpenAIClipTokenizer)?.Source, config.ToJson());
        LogLoaded(logger, identity.Describe());
        return new LoadedModel(model, tokenizer, SpecFor(config), device, identity) { TrainingConfig = checkpoint.Config };
    }

    /// <summary>The model a checkpoint was trained as: --model, else the config stored in the checkpoint, else the name or file its run config names.</summary>
    private static ClipConfig CheckpointModelConfig(ResolvedCheckpoint checkpoint, CheckpointState state, string? overrideModel)
    {
        try
        {
            if (overrideModel is not null)
            {
                return ClipConfig.Load(overrideModel);
            }

            if (state.ModelConfig is { } stored)
            {
                return ClipConfig.Parse(stored.GetRawText(), $"{checkpoint.Directory}/{CheckpointFiles.State}");
            }

            string model = checkpoint.Config.TryGetProperty("model", out var name) && name.ValueKind == JsonValueKind.String
                ? name.GetString()!
                : throw new RefusedException($"{checkpoint.Directory}/{CheckpointFiles.State} names no model; pass --model NAME|FILE");
            if (ClipConfig.BuiltInNames.Contains(model) || File.Exists(model))
            {
                return ClipConfig.Load(model);
            }

            throw new RefusedException(
                $"checkpoint {checkpoint.Directory} was trained with the model config file '{model}', which is not found from here " +
                "(relative paths are resolved against the current directory); pass the same config with --model FILE");
        }
        catch (ConfigException e)
        {
            throw new RefusedException($"model config: {e.Message}", e);
        }
    }

    private static LoadedModel LoadPretrained(string path, ModelSourceOptions options, TorchSharp.torch.Device device, ILogger logger)
    {
        // Published CLIP weights use OpenAI's BPE tokenizer: the shipped vocabulary unless --vocab names another.
        var tokenizer = OpenTokenizer(TokenizerSpec.ClipBpe, options.Vocabulary, "published CLIP weights use OpenAI's BPE tokenizer");
        try
        {
            using var file = StateDictFile.Read(path);
            var config = options.Config ?? (options.Model is { } model
                ? ClipConfig.Load(model)
                : PretrainedConfig.Infer(file, Path.GetFileNameWithoutExtension(file.Path), options.Activation));
            EnsureVocabulary(config, tokenizer);
            var clip = new ClipModel(config);
            try
            {
                var report = PretrainedImport.Load(clip, file);
                LogImported(logger, report.Describe());
            }
            catch
            {
                clip.Dispose();
                throw;
            }

            clip.to(device);
            var identity = new ModelIdentity(config.Name, ModelIdentity.FromPretrained, file.Path, null, null,
                ModelIdentity.HashParameters(clip), config.EmbedDim, tokenizer.Name, (tokenizer as OpenAIClipTokenizer)?.Source, config.ToJson());
            LogLoaded(logger, identity.Describe());
            return new LoadedModel(clip, tokenizer, SpecFor(config), device, identity);
        }
        catch (PretrainedImportException e)
        {
            throw new RefusedException(e.Message, e);
        }
        catch (ConfigException e)
        {
            throw new RefusedException($"model config: {e.Message}", e);
        }
    }

    /// <summary>The tokenizer a (canonical) name stands for; for clip-bpe, <paramref name="vocabulary"/> (--vocab) replaces the shipped vocabulary.</summary>
    private static ITextTokenizer OpenTokenizer(string name, string? vocabulary, string why)
    {
        try
        {
            return TokenizerSpec.Parse(name).Open(vocabulary);
        }
        catch (DataException e)
        {
            throw new RefusedException($"{why}: {e.Message}", e);
        }
    }

    private static void EnsureVocabulary(ClipConfig config, ITextTokenizer tokenizer)
    {
        if (config.Text.VocabSize < tokenizer.VocabSize)
        {
            throw new RefusedException(
                $"model '{config.Name}' has a {config.Text.VocabSize}-token vocabulary but tokenizer {tokenizer.Name} emits ids up to {tokenizer.VocabSize - 1}");
        }
    }

    /// <summary>The preprocessing training used for this input shape (grayscale Fashion-MNIST statistics, or CLIP's RGB ones).</summary>
    private static ImageSpec SpecFor(ClipConfig config) => DatasetSource.ImageSpecFor(config.Vision.Channels, config.Vision.ImageSize);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Checkpoint: {Warning}")]
    private static partial void LogCheckpointWarning(ILogger logger, string warning);

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {Identity}")]
    private static partial void LogLoaded(ILogger logger, string identity);

    [LoggerMessage(Level = LogLevel.Information, Message = "Imported {Report}")]
    private static partial void LogImported(ILogger logger, string report);
}

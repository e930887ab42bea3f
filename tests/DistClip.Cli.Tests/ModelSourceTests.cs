using DistClip.Checkpoints;
using DistClip.Cli.Indexing;
using DistClip.Cli.Inference;
using DistClip.Config;
using DistClip.Model;
using DistClip.Training;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Cli.Tests;

/// <summary>Where a model comes from, and the messages when it cannot come from there.</summary>
[Collection(TrainedRunCollection.Name)]
public sealed class ModelSourceTests(TrainedRun run)
{
    [Fact]
    public void A_checkpoint_trained_from_a_model_file_that_is_gone_still_loads_from_the_config_it_recorded()
    {
        string config = Path.Combine(run.Root, "my-micro.json");
        File.WriteAllText(config, ClipConfig.Load("clip-micro").ToJson().Replace("\"clip-micro\"", "\"my-micro\"", StringComparison.Ordinal));
        var options = new TrainOptions { Model = config, Steps = 1, GlobalBatch = 32, RetrievalSamples = 0, Threads = 2 };
        var store = new CheckpointStore(new CheckpointOptions(Path.Combine(run.Root, "checkpoints"), "from-file"));
        string checkpoint;
        using (var session = new TrainingSession(options, SingleProcessCollectives.Instance, NullLogger.Instance))
        {
            session.Train(null, CancellationToken.None);
            checkpoint = session.Save(store, CancellationToken.None).Directory;
        }

        string moved = Path.Combine(run.Root, "moved-micro.json");
        File.Move(config, moved);

        // The checkpoint carries the model's own config (state.json model_config), so the file is not needed.
        var fromCheckpoint = Cli.Run("classify", "--checkpoint", checkpoint, "--labels", "bag,coat", run.FirstImageOf("Bag"));
        var withModel = Cli.Run("classify", "--checkpoint", checkpoint, "--model", moved, "--labels", "bag,coat", run.FirstImageOf("Bag"));

        Assert.True(fromCheckpoint.ExitCode == 0, fromCheckpoint.ToString());
        Assert.True(withModel.ExitCode == 0, withModel.ToString());
    }

    [Fact]
    public void A_missing_or_unrecognised_checkpoint_directory_is_named()
    {
        string missing = Path.Combine(run.Root, "no-such-run");
        string empty = Directory.CreateDirectory(Path.Combine(run.Root, "empty-dir")).FullName;

        var absent = Cli.Run("eval", "--checkpoint", missing);
        var neither = Cli.Run("eval", "--checkpoint", empty);

        Assert.Equal(1, absent.ExitCode);
        Assert.Contains($"checkpoint directory {missing} does not exist", absent.Error);
        Assert.Equal(1, neither.ExitCode);
        Assert.Contains("neither a checkpoint step directory", neither.Error);
    }

    [Fact]
    public void Pretrained_weights_need_openais_vocabulary_and_a_text_tower_that_can_hold_it()
    {
        string weights = RepositoryFile("tests", "DistClip.Model.Tests", "Fixtures", "parity", "tiny-vit.pt");
        string absentVocabulary = Path.Combine(run.Root, "bpe_simple_vocab_16e6.txt.gz");

        var noVocabulary = Cli.Run("classify", "--pretrained", weights, "--vocab", absentVocabulary, "--labels", "a,b", run.FirstImageOf("Bag"));
        // The parity fixture's text tower has 256 ids: it imports, but cannot take OpenAI's tokens (the shipped vocabulary).
        var tooSmall = Cli.Run("classify", "--pretrained", weights, "--model", RepositoryFile("tests", "DistClip.Model.Tests", "Fixtures", "parity", "tiny-vit.json"),
            "--labels", "a,b", run.FirstImageOf("Bag"));

        Assert.Equal(1, noVocabulary.ExitCode);
        Assert.Contains($"OpenAI CLIP BPE vocabulary not found: {absentVocabulary}", noVocabulary.Error);
        Assert.Equal(1, tooSmall.ExitCode);
        Assert.Contains("model 'tiny-vit' has a 256-token vocabulary but tokenizer clip-bpe emits ids up to 49407", tooSmall.Error);
    }

    [Fact]
    public void Published_weights_classify_index_and_search_end_to_end_with_the_config_inferred()
    {
        // A small ViT with CLIP's text tower shape (49,408 ids, context 77), saved under OpenAI's names
        // as safetensors: the weights are random, so only the plumbing is under test here.
        var config = new ClipConfig("small-vit", 32,
            new VisionConfig(VisionConfig.Vit, ImageSize: 32, Channels: 3, PatchSize: 16, Width: 64, Layers: 1, Heads: 1, Activation: Activations.QuickGelu),
            new TextConfig(TextConfig.Causal, VocabSize: 49408, ContextLength: 77, Width: 64, Layers: 1, Heads: 1, Activation: Activations.QuickGelu));
        string weights = Path.Combine(run.Root, "small-vit.safetensors");
        using (var model = new ClipModel(config))
        using (var file = File.Create(weights))
        {
            TorchSharp.PyBridge.Safetensors.SaveStateDict(file, model.state_dict());
        }

        string index = Path.Combine(run.Root, "pretrained.index");

        // No --vocab: OpenAI's vocabulary ships with DistClip.
        var classified = Cli.Ok("classify", "--pretrained", weights, "--labels", "bag,coat", "--json", run.FirstImageOf("Bag"));
        Cli.Ok("index", "--pretrained", weights, "--images", run.ImagesDirectory, "--limit", "20", "--out", index);
        var found = Cli.Ok("search", "--index", index, "--top-k", "3", "a photo of a bag"); // the index names the weights

        Assert.Contains("small-vit from pretrained weights", classified.Out);
        Assert.Equal(4, found.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        var recorded = IndexFile.Read(index).Header.Model;
        Assert.Equal(ModelIdentity.FromPretrained, recorded.Source);
        Assert.Equal("clip-bpe", recorded.Tokenizer);
        Assert.Null(recorded.Vocabulary); // the shipped copy
        Assert.Equal(config, ClipConfig.Parse(recorded.Config, "index")); // inferred from names and shapes, named after the file
    }

    [Fact]
    public void Unknown_commands_and_options_are_usage_errors_and_help_lists_every_option()
    {
        var command = Cli.Run("frobnicate");
        var option = Cli.Run("eval", "--checkpoint", run.FirstCheckpoint, "--colour", "blue");
        var both = Cli.Run("eval", "--checkpoint", run.FirstCheckpoint, "--pretrained", "x.pt");
        var help = Cli.Ok("index", "--help");

        Assert.Equal(2, command.ExitCode);
        Assert.Contains("unknown command 'frobnicate'", command.Error);
        Assert.Equal(2, option.ExitCode);
        Assert.Contains("unknown option --colour", option.Error);
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("--checkpoint or --pretrained, not both", both.Error);
        foreach (string name in new[] { "--checkpoint", "--images", "--out", "--batch-size", "--limit", "--pretrained", "--vocab" })
        {
            Assert.Contains(name, help.Out);
        }
    }

    private static string RepositoryFile(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "DistClip.sln")))
            {
                return Path.GetFullPath(Path.Combine([dir.FullName, .. parts]));
            }
        }

        throw new InvalidOperationException($"no DistClip.sln above {AppContext.BaseDirectory}");
    }
}

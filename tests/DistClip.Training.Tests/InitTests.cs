using DistClip.Config;
using DistClip.Model;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.PyBridge;

namespace DistClip.Training.Tests;

public sealed class InitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-init-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_session_with_init_starts_from_those_weights_not_from_its_seed()
    {
        // Weights of another clip-micro (seed 1), written as safetensors as open_clip would.
        string weights = Path.Combine(_dir, "start.safetensors");
        torch.manual_seed(1);
        using (var source = new ClipModel(ClipConfig.Load("clip-micro")))
        using (var stream = File.Create(weights))
        {
            Safetensors.SaveStateDict(stream, source.state_dict());
        }

        using var expected = new ClipModel(ClipConfig.Load("clip-micro"));
        using (var stream = File.OpenRead(weights))
        {
            var loaded = Safetensors.LoadStateDict(stream);
            expected.load_state_dict(loaded);
        }

        var options = new TrainOptions { Model = "clip-micro", Seed = 2, Init = weights, Steps = 1, GlobalBatch = 32 };
        using var session = new TrainingSession(options, SingleProcessCollectives.Instance, NullLogger.Instance);

        var want = expected.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in session.Model.named_parameters())
        {
            Assert.True(parameter.detach().equal(want[name]).all().item<bool>(), $"{name} does not hold the --init weights");
        }
    }

    [Fact]
    public void Init_with_a_mismatched_state_dict_is_refused_naming_the_tensor()
    {
        string weights = Path.Combine(_dir, "tiny.safetensors");
        using (var other = new ClipModel(ClipConfig.Load("clip-tiny")))
        using (var stream = File.Create(weights))
        {
            Safetensors.SaveStateDict(stream, other.state_dict());
        }

        var options = new TrainOptions { Model = "clip-micro", Init = weights, Steps = 1, GlobalBatch = 32 };
        var e = Assert.ThrowsAny<Exception>(() => new TrainingSession(options, SingleProcessCollectives.Instance, NullLogger.Instance));
        Assert.Contains("visual", e.Message); // the image tower's tensors differ in name and shape
    }

    [Fact]
    public void The_openai_clip_tokenizer_trains_a_model_with_its_vocabulary_and_a_smaller_one_is_refused()
    {
        string config = Path.Combine(_dir, "micro-49408.json");
        File.WriteAllText(config, ClipConfig.Load("clip-micro").ToJson()
            .Replace("\"vocab_size\":50257", "\"vocab_size\":49408", StringComparison.Ordinal)
            .Replace("\"vocab_size\": 50257", "\"vocab_size\": 49408", StringComparison.Ordinal));
        Assert.Equal(49408, ClipConfig.Load(config).Text.VocabSize);

        var options = new TrainOptions { Model = config, Tokenizer = "clip-bpe", Steps = 2, GlobalBatch = 32, RetrievalSamples = 0, EvalSamples = 100 };
        using (var session = new TrainingSession(options, SingleProcessCollectives.Instance, NullLogger.Instance))
        {
            session.Train(null, CancellationToken.None);
            Assert.Equal(2, session.StepsDone);
        }

        var gpt2 = new TrainOptions { Model = config, Steps = 1, GlobalBatch = 32 }; // r50k has 50,257 ids
        var refused = Assert.Throws<ConfigException>(() => new TrainingSession(gpt2, SingleProcessCollectives.Instance, NullLogger.Instance));
        Assert.Equal("tokenizer", refused.Field);
    }
}

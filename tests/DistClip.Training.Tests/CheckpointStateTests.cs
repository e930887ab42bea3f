using System.Text.Json;
using System.Text.Json.Nodes;
using DistClip.Checkpoints;
using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Training.Tests;

/// <summary>state.json's training state: one typed record, and checkpoints written before it still read.</summary>
public sealed class CheckpointStateTests : IDisposable
{
    // A state.json body exactly as TrainingSession wrote it before CheckpointState existed (untyped
    // keys, the tokenizer then called r50k_base), less the library's step/config/config_hash.
    private const string WrittenBeforeTheRecord = """
        {
          "epoch": 2,
          "batch_in_epoch": 17,
          "rng": "AQIDBAUGBwg=",
          "samples": 4864,
          "train_seconds": 12.5,
          "history": [
            { "step": 10, "loss": 4.25, "lr": 0.0005, "samples_per_second": 380.5, "zero_shot_top1": null },
            { "step": 19, "loss": 3.5, "lr": 0.0004, "samples_per_second": 389, "zero_shot_top1": 0.25 }
          ],
          "data_order": "0A1B2C3D",
          "model_config": MODEL,
          "tokenizer": "r50k_base"
        }
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-state-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_checkpoint_written_before_the_typed_state_still_reads_through_the_store()
    {
        var store = new CheckpointStore(new CheckpointOptions(_dir, "old-run"));
        var old = JsonNode.Parse(WrittenBeforeTheRecord.Replace("MODEL", ClipConfig.Load("clip-micro").ToJson(), StringComparison.Ordinal))!.AsObject();
        store.Commit(19, old, JsonSerializer.SerializeToElement(new { model = "clip-micro" }), new Dictionary<string, Action<Stream>>(), CancellationToken.None);

        var state = CheckpointState.Of(store.ResolveLatest(CancellationToken.None)!);

        Assert.Equal((2, 17L), (state.Epoch, state.BatchInEpoch));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, state.Rng);
        Assert.Equal((4864L, 12.5), (state.Samples, state.TrainSeconds));
        Assert.Equal([new HistoryPoint(10, 4.25, 0.0005, 380.5, null), new HistoryPoint(19, 3.5, 0.0004, 389, 0.25)], state.History);
        Assert.Equal("0A1B2C3D", state.DataOrder);
        Assert.Equal(ClipConfig.Load("clip-micro"), ClipConfig.Parse(state.ModelConfig!.Value.GetRawText(), "state"));
        Assert.Equal("r50k_base", state.Tokenizer);
        Assert.Equal("r50k", state.TokenizerName);
    }

    [Fact]
    public void The_record_writes_the_same_keys_and_values_checkpoints_always_had()
    {
        var old = JsonNode.Parse(WrittenBeforeTheRecord.Replace("MODEL", "{\"name\":\"m\"}", StringComparison.Ordinal))!.AsObject();

        var rewritten = CheckpointState.FromJson(old, _dir).ToJson();

        Assert.True(JsonNode.DeepEquals(old, rewritten), $"expected {old.ToJsonString()}, wrote {rewritten.ToJsonString()}");
    }

    [Theory]
    [InlineData(null, "r50k")] // the oldest checkpoints recorded no tokenizer: they were r50k
    [InlineData("openai-clip-bpe", "clip-bpe")]
    [InlineData("clip-bpe", "clip-bpe")]
    public void Older_tokenizer_names_map_to_todays(string? recorded, string name)
    {
        var node = JsonNode.Parse(WrittenBeforeTheRecord.Replace("MODEL", "null", StringComparison.Ordinal))!.AsObject();
        node.Remove("tokenizer");
        if (recorded is not null)
        {
            node["tokenizer"] = recorded;
        }

        var state = CheckpointState.FromJson(node, _dir);

        Assert.Equal(name, state.TokenizerName);
        Assert.Null(state.ModelConfig);
    }

    [Fact]
    public void A_state_missing_a_field_is_a_corrupt_checkpoint_naming_state_json()
    {
        var node = JsonNode.Parse(WrittenBeforeTheRecord.Replace("MODEL", "null", StringComparison.Ordinal))!.AsObject();
        node.Remove("batch_in_epoch");

        var error = Assert.Throws<CorruptCheckpointException>(() => CheckpointState.FromJson(node, _dir));

        Assert.Equal(CheckpointFiles.State, error.FileName);
        Assert.Contains("batch_in_epoch", error.Message);
    }

    [Fact]
    public void A_session_resumed_from_its_checkpoint_has_the_saved_step_cursor_and_tokenizer()
    {
        var options = new TrainOptions { Steps = 3, StopAtStep = 2, GlobalBatch = 32, RetrievalSamples = 0, EvalSamples = 100 };
        var store = new CheckpointStore(new CheckpointOptions(_dir, "resume"));
        SamplerCursor saved;
        using (var first = new TrainingSession(options, SingleProcessCollectives.Instance, NullLogger.Instance))
        {
            first.Train(null, CancellationToken.None);
            first.Save(store, CancellationToken.None);
            saved = first.Cursor;
        }

        var checkpoint = store.ResolveLatest(CancellationToken.None)!;
        using var resumed = new TrainingSession(options, SingleProcessCollectives.Instance, NullLogger.Instance);
        resumed.Load(checkpoint);

        Assert.Equal(2, resumed.StepsDone);
        Assert.Equal(saved, resumed.Cursor);
        Assert.Equal("r50k", CheckpointState.Of(checkpoint).Tokenizer);
    }
}

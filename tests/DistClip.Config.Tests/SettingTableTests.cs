using DistClip.Config.Settings;

namespace DistClip.Config.Tests;

public sealed class SettingTableTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Setting S(string name) => SettingTable<RunConfig>.Find(name) ?? throw new InvalidOperationException(name);

    [Fact]
    public void Every_setting_has_a_kebab_name_a_snake_json_name_a_doc_and_the_default_of_a_new_record()
    {
        var settings = SettingTable<RunConfig>.Settings;
        Assert.True(settings.Count >= 45, $"only {settings.Count} settings");
        var fresh = new RunConfig();
        foreach (var s in settings)
        {
            Assert.Matches("^[a-z][a-z0-9-]*$", s.Name);
            Assert.Equal(s.Name.Replace('-', '_'), s.JsonName);
            Assert.False(string.IsNullOrWhiteSpace(s.Doc), s.Name);
            Assert.Equal(s.Default, s.Get(fresh));
            s.Check(s.Default); // every default is valid
        }

        Assert.Equal(256, S("global-batch").Default);
        Assert.Equal(5e-4, S("lr").Default);
        Assert.Equal(["adamw", "sgd"], S("optimizer").Choices);
        Assert.Equal(["softmax", "siglip"], S("loss").Choices);
        Assert.Contains("(default 256)", S("global-batch").Help, StringComparison.Ordinal);
        Assert.Contains("(default 2, or the hostfile's slots)", S("workers").Help, StringComparison.Ordinal);
    }

    [Fact]
    public void Setting_a_value_copies_the_records_and_leaves_the_original_alone()
    {
        var original = new RunConfig();
        var changed = SettingTable<RunConfig>.Apply(original, S("lr"), "0.001");
        changed = SettingTable<RunConfig>.Apply(changed, S("loss"), "siglip");
        changed = SettingTable<RunConfig>.Apply(changed, S("keep"), "7");

        Assert.Equal(0.001, changed.Training.Optimizer.LearningRate);
        Assert.Equal(LossKind.Siglip, changed.Training.Loss);
        Assert.Equal(7, changed.Keep);
        Assert.Equal(5e-4, original.Training.Optimizer.LearningRate);
        Assert.Equal(LossKind.Softmax, original.Training.Loss);
        Assert.Equal(3, original.Keep);
        Assert.NotSame(original.Training, changed.Training);
    }

    [Theory]
    [InlineData("global-batch", "lots", "global_batch", "not a whole number")]
    [InlineData("global-batch", "0", "global_batch", "at least 1")]
    [InlineData("lr", "-1", "lr", "positive")]
    [InlineData("lr", "NaN", "lr", "not a number")]
    [InlineData("beta2", "1", "beta2", "[0, 1)")]
    [InlineData("loss-chunk", "65537", "loss_chunk", "between 1 and 65536")]
    [InlineData("loss", "hinge", "loss", "softmax, siglip")]
    [InlineData("device", "tpu", "device", "auto, cpu, cuda")]
    [InlineData("dataset", "synthetic:0", "dataset", "synthetic:N")]
    [InlineData("dataset", "synthetic:100000001", "dataset", "synthetic:N")]
    [InlineData("dataset", "imagenet", "dataset", "fashion-mnist, wds:PATTERN")]
    [InlineData("tokenizer", "bert", "tokenizer", "r50k, clip-bpe or clip-bpe:PATH")]
    [InlineData("run-id", ".hidden", "run_id", "not starting with '.'")]
    [InlineData("workers", "-1", "workers", "at least 0")]
    [InlineData("heartbeat-timeout", "0", "heartbeat_timeout", "positive")]
    public void A_bad_value_is_refused_naming_the_setting(string name, string value, string field, string says)
    {
        var e = Assert.Throws<ConfigException>(() => SettingTable<RunConfig>.Apply(new RunConfig(), S(name), value));
        Assert.Equal(field, e.Field);
        Assert.Contains(says, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("synthetic:1")]
    [InlineData("synthetic:100000000")]
    [InlineData("wds:/data/shard-{000..009}.tar")]
    [InlineData("csv:/data/pairs.csv")]
    public void A_good_dataset_spec_passes(string spec) =>
        Assert.Equal(spec, SettingTable<RunConfig>.Apply(new RunConfig(), S("dataset"), spec).Training.Dataset);

    [Fact]
    public void Rules_between_settings_name_the_setting_to_change()
    {
        var config = new RunConfig { Workers = 4, Training = new TrainOptions { GlobalBatch = 10 } };
        Assert.Equal("global_batch", Assert.Throws<ConfigException>(config.Validate).Field);

        config = new RunConfig { Training = new TrainOptions { Steps = 5, StopAtStep = 6 } };
        Assert.Equal("stop_at_step", Assert.Throws<ConfigException>(config.Validate).Field);

        config = new RunConfig { Training = new TrainOptions { Optimizer = new OptimizerSettings { LearningRate = 1e-4, MinLearningRate = 1e-3 } } };
        Assert.Equal("min_lr", Assert.Throws<ConfigException>(config.Validate).Field);

        // A value set in code rather than parsed is checked too.
        config = new RunConfig { Training = new TrainOptions { Prefetch = 0 } };
        Assert.Equal("prefetch", Assert.Throws<ConfigException>(config.Validate).Field);
    }

    [Fact]
    public void The_command_line_overrides_the_json_config_wherever_it_stands()
    {
        string path = Write("run.json", """{ "steps": 40, "global_batch": 64, "lr": 0.001, "loss": "siglip", "workers": 4 }""");

        var config = RunConfig.FromArguments([new("steps", "7"), new("config", path), new("warmup-steps", "3")]);

        Assert.Equal(7, config.Training.Steps);
        Assert.Equal(64, config.Training.GlobalBatch);
        Assert.Equal(4, config.Workers);
        Assert.Equal(0.001, config.Training.Optimizer.LearningRate);
        Assert.Equal(LossKind.Siglip, config.Training.Loss);
        Assert.Equal(3, config.Training.Optimizer.WarmupSteps);
        Assert.Equal(0.98, config.Training.Optimizer.Beta2);
    }

    [Theory]
    [InlineData("""{ "stepz": 40 }""", "stepz", "unknown setting")]
    [InlineData("""[1, 2]""", "config", "JSON object")]
    [InlineData("""{ "steps": [1] }""", "steps", "string or a number")]
    [InlineData("""{ "steps": 4""", "config", "not valid JSON")]
    [InlineData("""{ "steps": 1.5 }""", "steps", "whole number")]
    public void A_bad_json_config_is_refused_by_name(string json, string field, string says)
    {
        string path = Write("bad.json", json);
        var e = Assert.Throws<ConfigException>(() => SettingTable<RunConfig>.ApplyJson(new RunConfig(), path));
        Assert.Equal(field, e.Field);
        Assert.Contains(says, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_config_file_larger_than_a_mebibyte_is_refused_unread()
    {
        string path = Path.Combine(_dir, "huge.json");
        using (var file = File.Create(path))
        {
            file.SetLength((1 << 20) + 1);
        }

        var e = Assert.Throws<ConfigException>(() => SettingTable<RunConfig>.ApplyJson(new RunConfig(), path));
        Assert.Equal("config", e.Field);
        Assert.Contains("at most", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deeply_nested_json_is_refused_before_it_is_walked()
    {
        string path = Write("deep.json", "{ \"steps\": " + new string('[', 64) + new string(']', 64) + " }");
        Assert.Equal("config", Assert.Throws<ConfigException>(() => SettingTable<RunConfig>.ApplyJson(new RunConfig(), path)).Field);
    }

    [Fact]
    public void The_settings_that_may_change_on_resume_are_those_that_leave_the_update_alone()
    {
        Assert.Equal(
            ["bucket_mib", "chunk_kib", "decode_threads", "device", "eval_every", "eval_samples", "init", "log_every", "loss_chunk",
             "max_skipped_steps", "micro_batch", "prefetch", "retrieval_samples", "steps", "stop_at_step", "threads"],
            TrainOptions.ResumableChanges.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Help_lists_every_setting_once()
    {
        var lines = SettingTable<RunConfig>.HelpLines().ToList();
        Assert.Equal(SettingTable<RunConfig>.Settings.Count, lines.Count);
        foreach (var s in SettingTable<RunConfig>.Settings)
        {
            Assert.Single(lines, l => l.StartsWith($"  --{s.Name} ", StringComparison.Ordinal));
        }
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }
}

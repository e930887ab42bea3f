using DistClip.Config.Settings;
using DistClip.Control;
using DistClip.Control.V1;
using Google.Protobuf;

namespace DistClip.Config.Tests;

/// <summary>The typed settings a worker receives in its assignment: every setting travels, and nothing hostile gets in.</summary>
public sealed class RunConfigValuesTests
{
    [Fact]
    public void Every_setting_survives_the_wire_with_its_kind()
    {
        var config = new RunConfig
        {
            Workers = 3,
            Hostfile = "/etc/hosts.distclip",
            HeartbeatTimeoutSeconds = 2.5,
            Link = "grpc",
            Training = new TrainOptions
            {
                Model = "clip-tiny",
                Tokenizer = "clip-bpe",
                GlobalBatch = 96,
                Loss = LossKind.Siglip,
                Init = null,
                Optimizer = new OptimizerSettings { Kind = OptimizerKind.Sgd, LearningRate = 0.125, Beta2 = 0.95 },
            },
        };

        var message = RunConfigValuesMapping.ToMessage(config);
        var back = RunConfigValuesMapping.FromMessage(RunConfigValues.Parser.ParseFrom(message.ToByteArray()));

        Assert.Equal(SettingTable<RunConfig>.Settings.Count, message.Values.Count);
        Assert.Equal(config, back); // records: nested settings compared by value
        Assert.Equal(SettingValue.ValueOneofCase.Text, message.Values.Single(v => v.Name == "loss").ValueCase);
        Assert.Equal("siglip", message.Values.Single(v => v.Name == "loss").Text);
        Assert.Equal(SettingValue.ValueOneofCase.Real, message.Values.Single(v => v.Name == "lr").ValueCase);
        Assert.Equal(SettingValue.ValueOneofCase.Integer, message.Values.Single(v => v.Name == "global_batch").ValueCase);
        Assert.Equal(SettingValue.ValueOneofCase.None, message.Values.Single(v => v.Name == "init").ValueCase);
    }

    [Fact]
    public void Settings_a_message_leaves_out_keep_their_defaults() =>
        Assert.Equal(new RunConfig(), RunConfigValuesMapping.FromMessage(new RunConfigValues()));

    public static TheoryData<string, SettingValue, string> Hostile => new()
    {
        { "unknown", new SettingValue { Name = "rm_rf", Integer = 1 }, "rm_rf" },
        { "wrong kind", new SettingValue { Name = "global_batch", Text = "256" }, "global_batch" },
        { "real for an integer", new SettingValue { Name = "steps", Real = 2.0 }, "steps" },
        { "beyond int", new SettingValue { Name = "steps", Integer = (long)int.MaxValue + 1 }, "steps" },
        { "out of bounds", new SettingValue { Name = "global_batch", Integer = -5 }, "global_batch" },
        { "bad choice", new SettingValue { Name = "loss", Text = "hinge" }, "loss" },
        { "bad pattern", new SettingValue { Name = "dataset", Text = "synthetic:0" }, "dataset" },
        { "non-finite", new SettingValue { Name = "lr", Real = double.PositiveInfinity }, "lr" },
        { "unset required", new SettingValue { Name = "model" }, "model" },
        { "huge text", new SettingValue { Name = "model", Text = new string('m', 1 << 20) }, "model" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void A_hostile_value_is_refused_naming_the_setting(string why, SettingValue value, string field)
    {
        var message = new RunConfigValues { Values = { value } };
        var e = Assert.Throws<ConfigException>(() => RunConfigValuesMapping.FromMessage(message));
        Assert.True(e.Field == field, $"{why}: named {e.Field}");
    }

    [Fact]
    public void A_repeated_setting_and_a_flood_of_values_are_refused()
    {
        var twice = new RunConfigValues { Values = { new SettingValue { Name = "steps", Integer = 3 }, new SettingValue { Name = "steps", Integer = 4 } } };
        Assert.Equal("steps", Assert.Throws<ConfigException>(() => RunConfigValuesMapping.FromMessage(twice)).Field);

        var flood = new RunConfigValues();
        flood.Values.AddRange(Enumerable.Range(0, 5000).Select(i => new SettingValue { Name = "steps", Integer = i }));
        Assert.Equal("config", Assert.Throws<ConfigException>(() => RunConfigValuesMapping.FromMessage(flood)).Field);
    }

    [Fact]
    public void A_long_unknown_name_is_cut_in_the_error()
    {
        var message = new RunConfigValues { Values = { new SettingValue { Name = new string('x', 100_000), Integer = 1 } } };
        var e = Assert.Throws<ConfigException>(() => RunConfigValuesMapping.FromMessage(message));
        Assert.True(e.Message.Length < 400, $"error of {e.Message.Length} characters");
    }
}

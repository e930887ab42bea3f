using System.Text.Json;
using DistClip.Coordinator.Cli;
using DistClip.Model;

namespace DistClip.Coordinator.Tests;

public sealed class LaunchTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-launch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_command_line_overrides_the_json_config_and_unset_values_keep_their_defaults()
    {
        string config = Path.Combine(_dir, "run.json");
        File.WriteAllText(config, """{ "steps": 40, "global_batch": 64, "lr": 0.001, "model": "clip-tiny" }""");

        var (options, runDir) = LaunchCommand.Parse(["--steps", "7", "--config", config, "--run-dir", _dir, "--warmup-steps=3"]);

        Assert.Equal(7, options.Steps);                    // command line wins, wherever it stands
        Assert.Equal(64, options.GlobalBatch);             // from the file
        Assert.Equal(0.001, options.Optimizer.LearningRate);
        Assert.Equal(3, options.Optimizer.WarmupSteps);
        Assert.Equal("clip-tiny", options.Model);
        Assert.Equal(0.98, options.Optimizer.Beta2);       // default
        Assert.Equal(_dir, runDir);
    }

    [Fact]
    public void An_unknown_json_key_is_refused_by_name()
    {
        string config = Path.Combine(_dir, "bad.json");
        File.WriteAllText(config, """{ "stepz": 40 }""");
        var e = Assert.Throws<ConfigException>(() => LaunchCommand.Parse(["--config", config]));
        Assert.Equal("stepz", e.Field);
    }

    [Fact]
    public void A_non_numeric_value_is_refused_by_name()
    {
        var e = Assert.Throws<ConfigException>(() => LaunchCommand.Parse(["--global-batch", "lots"]));
        Assert.Equal("global-batch", e.Field);
    }

    [Fact]
    public async Task A_bad_configuration_exits_2_naming_the_field_before_any_training()
    {
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromSeconds(60), "launch", "--model", "clip-huge", "--steps", "5", "--run-dir", _dir);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("clip-huge", result.Stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "summary.json")), "nothing may be written for a refused run");
    }

    [Fact]
    public async Task Launch_trains_evaluates_and_writes_the_summary()
    {
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3),
            "launch", "--steps", "4", "--global-batch", "64", "--eval-samples", "500", "--retrieval-samples", "200",
            "--threads", "1", "--log-every", "2", "--run-dir", _dir);

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        Assert.Contains("zero-shot top-1", result.Stdout);
        Assert.Contains("step 4/4", result.Stdout);
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "summary.json")));
        var root = summary.RootElement;
        Assert.Equal(4, root.GetProperty("steps").GetInt64());
        Assert.Equal(64, root.GetProperty("global_batch").GetInt32());
        Assert.Equal(1, root.GetProperty("world_size").GetInt32());
        Assert.Equal(500, root.GetProperty("zero_shot_samples").GetInt32());
        Assert.InRange(root.GetProperty("zero_shot_top1").GetDouble(), 0.0, 1.0);
        Assert.True(root.GetProperty("samples_per_second").GetDouble() > 0);
        Assert.True(double.IsFinite(root.GetProperty("final_loss").GetDouble()));
        Assert.InRange(root.GetProperty("recall_at_1").GetProperty("image_to_text").GetDouble(), 0.0, 1.0);
        Assert.Equal(0, root.GetProperty("restarts").GetInt32());
        Assert.Equal(0, root.GetProperty("skipped_samples").GetInt64());
    }
}

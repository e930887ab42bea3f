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
        File.WriteAllText(config, """{ "steps": 40, "global_batch": 64, "lr": 0.001, "model": "clip-tiny", "workers": 4 }""");

        var (settings, rest) = LaunchCommand.Parse(["--steps", "7", "--config", config, "--run-dir", _dir, "--warmup-steps=3"]);

        Assert.Empty(rest);
        Assert.Equal(7, settings.Training.Steps);                 // command line wins, wherever it stands
        Assert.Equal(64, settings.Training.GlobalBatch);          // from the file
        Assert.Equal(4, settings.Workers);
        Assert.Equal(0.001, settings.Training.Optimizer.LearningRate);
        Assert.Equal(3, settings.Training.Optimizer.WarmupSteps);
        Assert.Equal("clip-tiny", settings.Training.Model);
        Assert.Equal(0.98, settings.Training.Optimizer.Beta2);    // default
        Assert.Equal(_dir, settings.RunDir);
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

    [Theory]
    [InlineData("global_batch", "--workers", "4", "--global-batch", "10")]
    [InlineData("model", "--model", "clip-huge")]
    [InlineData("dataset", "--dataset", "wds:/nonexistent/shard-{000..003}.tar")]
    [InlineData("checkpoint_dir", "--checkpoint-dir", "/proc/distclip-cannot-write-here")]
    [InlineData("workers", "--workers", "-1")]
    public async Task A_bad_configuration_exits_2_naming_the_field_before_any_worker_starts(string field, params string[] args)
    {
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromSeconds(60),
            ["launch", "--run-dir", _dir, "--checkpoint-dir", Path.Combine(_dir, "ck"), .. args]);

        Assert.True(result.ExitCode == 2, $"expected exit 2, got {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Contains(field + ":", result.Stderr);
        Assert.DoesNotContain("Started worker", result.Stdout);
        Assert.False(File.Exists(Path.Combine(_dir, "summary.json")), "nothing may be written for a refused run");
    }

    [Fact]
    public async Task Launch_with_two_workers_trains_evaluates_and_writes_the_summary()
    {
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3),
            [.. Runs.Quick(_dir, "summary"), "--workers", "2", "--steps", "4"]);

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        Assert.Contains("zero-shot top-1", result.Stdout);
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "summary", "summary.json")));
        var root = summary.RootElement;
        Assert.Equal(4, root.GetProperty("steps").GetInt64());
        Assert.Equal(32, root.GetProperty("global_batch").GetInt32());
        Assert.Equal(2, root.GetProperty("world_size").GetInt32());
        Assert.Equal(500, root.GetProperty("zero_shot_samples").GetInt32());
        Assert.InRange(root.GetProperty("zero_shot_top1").GetDouble(), 0.0, 1.0);
        Assert.InRange(root.GetProperty("zero_shot_top5").GetDouble(), root.GetProperty("zero_shot_top1").GetDouble(), 1.0);
        Assert.True(root.GetProperty("samples_per_second").GetDouble() > 0);
        Assert.True(double.IsFinite(root.GetProperty("final_loss").GetDouble()));
        Assert.InRange(root.GetProperty("recall_at_1").GetProperty("image_to_text").GetDouble(), 0.0, 1.0);
        Assert.InRange(root.GetProperty("recall_at_1").GetProperty("text_to_image").GetDouble(), 0.0, 1.0);
        Assert.Equal(0, root.GetProperty("restarts").GetInt32());
        Assert.Equal(0, root.GetProperty("skipped_samples").GetInt64());
        Assert.Equal(64, root.GetProperty("parameters_sha256").GetString()!.Length);

        // Each worker's own peak RSS (VmHWM), by rank: a clip-micro worker holds libtorch and a
        // dataset (> 50 MB) and nowhere near 4 GiB.
        long[] peaks = root.GetProperty("peak_rss_bytes").EnumerateArray().Select(p => p.GetInt64()).ToArray();
        Assert.Equal(2, peaks.Length);
        Assert.All(peaks, p => Assert.True(p > 50_000_000 && p < 4L << 30, $"peak RSS {p} bytes, expected between 50 MB and 4 GiB"));
        Assert.Equal(peaks.Max(), root.GetProperty("peak_rss_bytes_max").GetInt64());
        for (int rank = 0; rank < 2; rank++)
        {
            // Slot r asks for rank r, so worker-r.log is rank r's; its last line carries the peak it reported.
            string last = File.ReadLines(Path.Combine(_dir, "summary", "logs", $"worker-{rank}.log")).Last(l => l.Length > 0);
            Assert.Contains($"rank {rank} finished at step 4; peak RSS", last);
            Assert.Contains($"({peaks[rank]} bytes)", last);
        }
    }
}

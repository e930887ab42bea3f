using System.Text.Json;
using System.Text.RegularExpressions;
using DistClip.Config;
using DistClip.Coordinator.Cli;
using DistClip.Training;

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

        var settings = CoordinatorCommand.Parse(["--steps", "7", "--config", config, "--run-dir", _dir, "--warmup-steps=3"], serve: false).Run;

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
        var e = Assert.Throws<ConfigException>(() => CoordinatorCommand.Parse(["--config", config], serve: false));
        Assert.Equal("stepz", e.Field);
    }

    [Fact]
    public void A_non_numeric_value_is_refused_by_name()
    {
        var e = Assert.Throws<ConfigException>(() => CoordinatorCommand.Parse(["--global-batch", "lots"], serve: false));
        Assert.Equal("global_batch", e.Field);
    }

    [Theory]
    [InlineData("global_batch", "--workers", "4", "--global-batch", "10")]
    [InlineData("model", "--model", "clip-huge")]
    [InlineData("dataset", "--dataset", "wds:/nonexistent/shard-{000..003}.tar")]
    [InlineData("checkpoint_dir", "--checkpoint-dir", "/proc/distclip-cannot-write-here")]
    [InlineData("workers", "--workers", "-1")]
    [InlineData("global_batch", "--dataset", "synthetic:100", "--global-batch", "128")] // needs the dataset's size
    [InlineData("link", "--link", "quic")]
    [InlineData("bind", "--bind", "0.0.0.0")] // a serve option
    [InlineData("metrics_port", "--metrics-port", "70000")]
    [InlineData("--tls-cert", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem", "--tls-ca", "/nonexistent/ca.pem")]
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
    public async Task The_stock_grpc_link_stack_trains_the_same_replicas_as_the_direct_one()
    {
        string[] run = ["--workers", "2", "--steps", "3", "--eval-samples", "100", "--retrieval-samples", "0"];
        var direct = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3), [.. Runs.Quick(_dir, "direct"), .. run]);
        var grpc = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3), [.. Runs.Quick(_dir, "grpc"), .. run, "--link", "grpc"]);

        Assert.True(direct.ExitCode == 0 && grpc.ExitCode == 0, $"exits {direct.ExitCode}, {grpc.ExitCode}\n{grpc.Stdout}\n{grpc.Stderr}");
        for (int rank = 0; rank < 2; rank++)
        {
            Assert.Contains("(link stack: grpc)", File.ReadAllText(Path.Combine(_dir, "grpc", "logs", $"worker-{rank}.log")));
            Assert.Contains("(link stack: direct)", File.ReadAllText(Path.Combine(_dir, "direct", "logs", $"worker-{rank}.log")));
        }

        // The link stack moves the same bytes: the same seed trains bit-identical replicas either way.
        Assert.Equal(Runs.Summary(_dir, "direct").GetProperty("parameters_sha256").GetString(),
            Runs.Summary(_dir, "grpc").GetProperty("parameters_sha256").GetString());
    }

    [Fact]
    public async Task Launch_with_two_workers_trains_evaluates_and_writes_the_summary()
    {
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3),
            [.. Runs.Quick(_dir, "summary"), "--workers", "2", "--steps", "5"]);

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        Assert.Contains("zero-shot top-1", result.Stdout);
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "summary", "summary.json")));
        var root = summary.RootElement;
        Assert.Equal(5, root.GetProperty("steps").GetInt64());
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

        // Every rank's mean phase times, by rank, under the summary's phase names; rank 0's are the summary's own.
        var byRank = root.GetProperty("phase_seconds_by_rank").EnumerateArray()
            .Select(r => r.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble())).ToArray();
        Assert.Equal(2, byRank.Length);
        Assert.All(byRank, phases =>
        {
            Assert.Equal(RunSummary.PhaseNames.Order(), phases.Keys.Order());
            Assert.True(phases["forward"] > 0 && phases["backward"] > 0, string.Join(", ", phases));
        });
        var rank0 = root.GetProperty("phase_seconds").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        Assert.Equal(rank0, byRank[0]);

        // Step 4's waits (the one timed step before the last: a step's are split in the next) split by
        // cause, by rank: the exposed communication is one figure for the step, the same on both.
        var waits = root.GetProperty("wait_seconds_by_rank").EnumerateArray()
            .Select(r => r.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble())).ToArray();
        Assert.Equal(2, waits.Length);
        Assert.All(waits, w =>
        {
            Assert.Equal(RunSummary.WaitNames.Order(), w.Keys.Order());
            Assert.All(w.Values, v => Assert.True(double.IsFinite(v) && v >= 0, string.Join(", ", w)));
        });
        Assert.Equal(waits[0]["exposed_communication"], waits[1]["exposed_communication"]);
        Assert.Equal(root.GetProperty("wait_seconds").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble()), waits[0]);
        for (int rank = 0; rank < 2; rank++)
        {
            // Slot r asks for rank r, so worker-r.log is rank r's; its last line carries the peak it reported.
            var lines = File.ReadLines(Path.Combine(_dir, "summary", "logs", $"worker-{rank}.log")).Where(l => l.Length > 0).ToList();
            string last = lines[^1];
            Assert.True(last.Contains($"rank {rank} finished at step 5; peak RSS", StringComparison.Ordinal),
                $"worker-{rank}.log does not end with its finish line; it ends:\n{string.Join('\n', lines.TakeLast(6))}");
            Assert.Contains($"({peaks[rank]} bytes)", last);
        }
    }

    [Fact]
    public async Task Each_local_worker_sees_its_own_gpu_from_the_coordinators_cuda_visible_devices()
    {
        // Two listed GPUs for two workers: auto proceeds. libtorch here is the CPU build, so the workers
        // train on the CPU, and their logs say which GPU each was given.
        await using var coordinator = CoordinatorProcess.Start(new Dictionary<string, string> { ["CUDA_VISIBLE_DEVICES"] = "7,5" },
            [.. Runs.Quick(_dir, "gpus"), "--workers", "2", "--steps", "2", "--device", "auto"]);
        var result = await coordinator.WaitAsync(TimeSpan.FromMinutes(3));

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        Assert.Matches(@"Started worker slot 0 \(pid \d+\) for .* with CUDA_VISIBLE_DEVICES=7", result.Stdout);
        Assert.Matches(@"Started worker slot 1 \(pid \d+\) for .* with CUDA_VISIBLE_DEVICES=5", result.Stdout);
        Assert.Equal("CUDA_VISIBLE_DEVICES=7", DeviceLine(Path.Combine(_dir, "gpus"), 0).Groups["seen"].Value);
        Assert.Equal("CUDA_VISIBLE_DEVICES=5", DeviceLine(Path.Combine(_dir, "gpus"), 1).Groups["seen"].Value);
        Assert.Equal("cpu", DeviceLine(Path.Combine(_dir, "gpus"), 0).Groups["device"].Value);
    }

    [Theory]
    [InlineData("", "device: cuda needs a GPU for each of the 2 workers, but this host has none (CUDA_VISIBLE_DEVICES is set but empty)")]
    [InlineData("0", "workers: 2 workers on this host but only 1 GPU (CUDA_VISIBLE_DEVICES=0); with --device cuda each worker needs its own GPU")]
    public async Task A_cuda_launch_without_a_gpu_per_worker_exits_2_before_any_worker_starts(string visibleDevices, string message)
    {
        await using var coordinator = CoordinatorProcess.Start(new Dictionary<string, string> { ["CUDA_VISIBLE_DEVICES"] = visibleDevices },
            [.. Runs.Quick(_dir, "refused"), "--workers", "2", "--device", "cuda"]);
        var result = await coordinator.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(result.ExitCode == 2, $"expected exit 2, got {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Contains("error: " + message, result.Stderr);
        Assert.DoesNotContain("Started worker", result.Stdout);
        Assert.False(Directory.Exists(Path.Combine(_dir, "refused", "logs")), "no worker may have started");
    }

    [Fact]
    public async Task A_cuda_worker_that_sees_no_gpu_reports_a_fatal_error_naming_its_gpu_and_the_run_fails_without_restarts()
    {
        // The coordinator counts one GPU (the user's list) for one worker; the worker's libtorch
        // (the CPU build) sees none: it must stop at start, say why (a fatal error: a replacement
        // would refuse too), and no replacement may be tried.
        await using var coordinator = CoordinatorProcess.Start(new Dictionary<string, string> { ["CUDA_VISIBLE_DEVICES"] = "3" },
            [.. Runs.Quick(_dir, "nogpu"), "--workers", "1", "--device", "cuda", "--max-restarts", "3"]);
        var result = await coordinator.WaitAsync(TimeSpan.FromMinutes(2));

        Assert.True(result.ExitCode == 1, $"expected exit 1, got {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Matches(@"error: the run failed: rank 0 \(worker [^,]+, generation 1\) at step 0 in phase joining failed with an error a restart cannot fix: " +
            @"ConfigException: device: cuda was requested but libtorch sees no CUDA device here \(CUDA_VISIBLE_DEVICES=3\)", result.Stderr);
        Assert.Single(Regex.Matches(result.Stdout, "Started worker slot 0"));
    }

    /// <summary>
    /// A worker runs on tcmalloc where it is installed (scripts/ensure-deps.sh installs it): it
    /// re-executes itself with the library preloaded, and its own mappings show it. With
    /// <c>DISTCLIP_MALLOC=glibc</c> it fixes glibc's malloc thresholds instead (NativeAllocator; a
    /// step otherwise took ~100,000 fresh pages), and where the user's environment sets glibc's malloc
    /// it leaves glibc alone and says that. Its build also turns JIT tiering off (background
    /// re-compilation took 3-5% of a core from training), which it reports. Nothing but log lines
    /// reaches its log (TorchSharp's save_data used to print a warning there every step).
    /// </summary>
    [Fact]
    public async Task Workers_run_on_tcmalloc_or_fix_glibcs_thresholds_unless_the_environment_sets_its_own()
    {
        string[] run = ["--workers", "1", "--steps", "2", "--eval-samples", "100", "--retrieval-samples", "0"];
        var environments = new Dictionary<string, Dictionary<string, string>?>
        {
            ["tcmalloc"] = null,
            ["glibc"] = new() { [NativeAllocator.ChoiceVariable] = "glibc" },
            ["own"] = new() { ["GLIBC_TUNABLES"] = "glibc.malloc.check=0" },
        };
        foreach (var (name, environment) in environments)
        {
            // A temp folder of the run's own, where the .NET runtime of every process puts its diagnostics socket.
            string temp = Directory.CreateDirectory(Path.Combine(_dir, name + "-tmp")).FullName;
            var withTemp = new Dictionary<string, string>(environment ?? []) { ["TMPDIR"] = temp };
            await using var coordinator = CoordinatorProcess.Start(withTemp, [.. Runs.Quick(_dir, name), .. run]);
            var result = await coordinator.WaitAsync(TimeSpan.FromMinutes(2));
            Assert.True(result.ExitCode == 0, $"{name}: exit {result.ExitCode}\n{result.Stderr}");

            // Every process ended normally, so none left its endpoints; the worker's exec (tcmalloc) left its first image's before.
            var left = Directory.EnumerateFileSystemEntries(temp).Select(Path.GetFileName).Where(f => f!.StartsWith("dotnet-diagnostic-", StringComparison.Ordinal)
                || f.StartsWith("clr-debug-pipe-", StringComparison.Ordinal)).ToList();
            Assert.True(left.Count == 0, $"{name}: the run left {string.Join(", ", left)} in its temp folder");
        }

        string Log(string name) => File.ReadAllText(Path.Combine(_dir, name, "logs", "worker-0.log"));
        Assert.Matches(@"Native memory: malloc: tcmalloc \(/\S+/libtcmalloc_minimal\.so\.4[.0-9]*, preloaded\)", Log("tcmalloc"));
        Assert.Contains("JIT: tiered compilation off (each method compiled once, optimised)", Log("tcmalloc"));
        Assert.Contains("Native memory: malloc: mmap threshold 32 MiB, trim threshold 1024 MiB", Log("glibc"));
        Assert.DoesNotContain("tcmalloc", Log("glibc"));
        Assert.Contains("Native memory: malloc: GLIBC_TUNABLES sets glibc.malloc, glibc's settings left to the environment", Log("own"));
        Assert.DoesNotContain("mmap threshold 32 MiB", Log("own"));
        Assert.DoesNotContain("tcmalloc", Log("own"));
        foreach (string name in environments.Keys)
        {
            // Every line of a worker's log is the logger's: "HH:mm:ss level: category[id] message".
            var stray = Log(name).Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !Regex.IsMatch(l, @"^\d\d:\d\d:\d\d \w+: ")).ToList();
            Assert.True(stray.Count == 0, $"{name}: lines not from the logger in worker-0.log:\n{string.Join('\n', stray.Take(5))}");
        }
    }

    /// <summary>The line a worker logs at start about its device, e.g. "Device: cpu with 1 thread(s) (CUDA_VISIBLE_DEVICES=7; 0 CUDA device(s) visible)".</summary>
    internal static Match DeviceLine(string runDir, int slot)
    {
        string log = File.ReadAllText(Path.Combine(runDir, "logs", $"worker-{slot}.log"));
        var line = Regex.Match(log, @"Device: (?<device>cpu|cuda:\d+)\b.*?\((?<seen>CUDA_VISIBLE_DEVICES[^;]*); (?<count>\d+) CUDA device\(s\) visible\)");
        Assert.True(line.Success, $"worker-{slot}.log has no device line:\n{log}");
        return line;
    }

    /// <summary>
    /// Probe 17 of issue #15 through the real <c>coordinator launch</c>: a hostfile whose host or user
    /// ssh would read as an option running a command. Refused by name (exit 2) before any ssh starts:
    /// the command's marker file never appears.
    /// </summary>
    [Theory]
    [InlineData("-oProxyCommand=touch${IFS}MARKER slots=1", "is not a host name")]
    [InlineData("node-b slots=1 user=-oProxyCommand=touch${IFS}MARKER", "is not a user name")]
    public async Task A_hostfile_host_or_user_that_ssh_would_read_as_an_option_is_refused_before_ssh_runs(string line, string expected)
    {
        string marker = Path.Combine(_dir, "pwned");
        string hostfile = Path.Combine(_dir, "hosts");
        File.WriteAllText(hostfile, $"127.0.0.1 slots=1\n{line.Replace("MARKER", marker, StringComparison.Ordinal)}\n");

        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromSeconds(60), [.. Runs.Quick(_dir, "injected"), "--hostfile", hostfile, "--workers", "2"]);

        Assert.True(result.ExitCode == 2, $"expected exit 2, got {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Contains($"{hostfile}:2: ", result.Stderr);
        Assert.Contains(expected, result.Stderr);
        Assert.DoesNotContain("Started worker", result.Stdout);
        Assert.False(File.Exists(marker), "the injected ssh option ran its command");
    }

    [Theory]
    [InlineData("")] // probe 7 of issue #15 as made: a file of 0 bytes
    [InlineData(" \n")]
    public async Task An_empty_secret_file_is_refused_by_serve_and_by_a_worker(string content)
    {
        // With an empty secret, anyone sending an empty header would have joined the run.
        string empty = Path.Combine(_dir, "empty-secret");
        File.WriteAllText(empty, content);

        var serve = await CoordinatorProcess.RunAsync(TimeSpan.FromSeconds(60),
            "serve", "--bind", "127.0.0.1", "--port", "0", "--secret-file", empty, "--run-dir", Path.Combine(_dir, "serve"));
        Assert.True(serve.ExitCode == 2, $"exit {serve.ExitCode}\n{serve.Stdout}\n{serve.Stderr}");
        Assert.Contains("secret_file", serve.Stderr);
        Assert.Contains("is empty", serve.Stderr);

        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { CoordinatorProcess.WorkerDllPath, "--coordinator", "http://127.0.0.1:1/", "--secret-file", empty })
        {
            psi.ArgumentList.Add(a);
        }

        using var worker = System.Diagnostics.Process.Start(psi)!;
        var stderr = worker.StandardError.ReadToEndAsync();
        _ = worker.StandardOutput.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await worker.WaitForExitAsync(deadline.Token);
        Assert.Equal(2, worker.ExitCode);
        Assert.Contains("is empty", await stderr);
    }
}

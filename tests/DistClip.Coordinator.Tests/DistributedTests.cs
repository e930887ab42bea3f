using System.Diagnostics;
using System.Globalization;
using DistClip.Config;
using Xunit.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>Distributed training end to end: real coordinator and worker processes on 127.0.0.1.</summary>
public sealed class DistributedTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan RunDeadline = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-dist-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<CoordinatorProcess.Result> Launch(string name, params string[] extra)
    {
        var result = await CoordinatorProcess.RunAsync(RunDeadline, [.. Runs.Quick(_dir, name), .. extra]);
        output.WriteLine($"--- {name}: exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.True(result.ExitCode == 0, $"run {name} exited {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        return result;
    }

    [Fact]
    public async Task One_two_and_four_workers_reach_the_same_parameters_under_sgd()
    {
        string[] sgd = ["--optimizer", "sgd", "--lr", "0.5", "--grad-clip", "0", "--steps", "6", "--checkpoint-every", "0"];
        await Launch("w1", ["--workers", "1", .. sgd]);
        await Launch("w2", ["--workers", "2", .. sgd]);
        await Launch("w4", ["--workers", "4", .. sgd]);

        var one = Runs.FinalParameters(_dir, "w1");
        foreach (string name in new[] { "w2", "w4" })
        {
            var (tensor, error) = Runs.WorstRelativeDifference(one, Runs.FinalParameters(_dir, name));
            Assert.True(error <= 1e-5, $"{name}: {tensor} differs from the single-worker run by {error:E2} of its largest magnitude (allowed 1e-5)");
        }

        // The test means something only if training moved the weights.
        Assert.NotEqual(Runs.Summary(_dir, "w1").GetProperty("parameters_sha256").GetString(), InitialHash());
    }

    [Fact]
    public async Task Accumulated_chunked_and_sigmoid_runs_on_two_workers_reach_the_one_worker_parameters()
    {
        // Softmax: one worker in one pass against two workers accumulating micro-batches of 5 (of 16) with
        // tiles of 7 logits. SigLIP: one worker against two workers passing texts around the ring.
        string[] sgd = ["--optimizer", "sgd", "--lr", "0.5", "--grad-clip", "0", "--steps", "4", "--checkpoint-every", "0"];
        await Launch("soft1", ["--workers", "1", .. sgd]);
        await Launch("soft2", ["--workers", "2", "--micro-batch", "5", "--loss-chunk", "7", .. sgd]);
        await Launch("sig1", ["--workers", "1", "--loss", "siglip", .. sgd]);
        await Launch("sig2", ["--workers", "2", "--loss", "siglip", "--loss-chunk", "7", .. sgd]);

        foreach (var (one, two) in new[] { ("soft1", "soft2"), ("sig1", "sig2") })
        {
            var (tensor, error) = Runs.WorstRelativeDifference(Runs.FinalParameters(_dir, one), Runs.FinalParameters(_dir, two));
            Assert.True(error <= 1e-5, $"{two}: {tensor} differs from {one} by {error:E2} of its largest magnitude (allowed 1e-5)");
        }

        var sigmoid = Runs.Summary(_dir, "sig2");
        Assert.Equal("siglip", sigmoid.GetProperty("loss").GetString());
        Assert.Contains("logit_bias", Runs.FinalParameters(_dir, "sig2").Keys);
        Assert.Equal(5, Runs.Summary(_dir, "soft2").GetProperty("micro_batch").GetInt32());
    }

    [Fact]
    public async Task Adamw_loss_curves_of_one_and_two_workers_agree()
    {
        await Launch("a1", "--workers", "1", "--steps", "6", "--lr", "1e-3", "--checkpoint-every", "0");
        await Launch("a2", "--workers", "2", "--steps", "6", "--lr", "1e-3", "--checkpoint-every", "0");

        double[] one = Runs.LossCurve(Runs.Summary(_dir, "a1"));
        double[] two = Runs.LossCurve(Runs.Summary(_dir, "a2"));
        Assert.Equal(one.Length, two.Length);
        for (int i = 0; i < one.Length; i++)
        {
            Assert.True(Math.Abs(one[i] - two[i]) <= 1e-4, $"loss at point {i}: 1 worker {one[i]:F6}, 2 workers {two[i]:F6}");
        }
    }

    [Fact]
    public async Task A_run_stopped_at_step_10_and_resumed_ends_where_an_uninterrupted_run_ends()
    {
        // Accumulating over micro-batches of 6 (of 16): a resume in the middle of such a run is exact too.
        string[] common = ["--workers", "2", "--steps", "20", "--checkpoint-every", "5", "--micro-batch", "6"];
        await Launch("straight", common);
        var first = await Launch("split", [.. common, "--stop-at-step", "10"]);
        Assert.Contains("checkpoint of step 10 committed", first.Stdout);
        var resumed = await Launch("split", [.. common, "--resume", "latest"]);
        Assert.Contains("resuming from step 10", resumed.Stdout);

        var (tensor, error) = Runs.WorstRelativeDifference(Runs.FinalParameters(_dir, "straight"), Runs.FinalParameters(_dir, "split"));
        Assert.True(error <= 1e-6, $"{tensor} differs by {error:E2} after resume (allowed 1e-6)");
        var straight = Runs.Summary(_dir, "straight");
        var split = Runs.Summary(_dir, "split");
        Assert.Equal(20, split.GetProperty("steps").GetInt64());
        Assert.Equal(straight.GetProperty("data_order_sha256").GetString(), split.GetProperty("data_order_sha256").GetString());
    }

    [Fact]
    public async Task A_flipped_byte_in_the_newest_checkpoint_is_detected_and_the_previous_one_used()
    {
        await Launch("flip", "--workers", "2", "--steps", "4", "--checkpoint-every", "2");
        string newest = Path.Combine(_dir, "checkpoints", "flip", "step-000000004", "model.bin");
        byte[] bytes = File.ReadAllBytes(newest);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(newest, bytes);

        var resumed = await Launch("flip", "--workers", "2", "--steps", "6", "--checkpoint-every", "2", "--resume", "latest");

        Assert.Contains("model.bin", resumed.Stderr);
        Assert.Contains("step-000000004", resumed.Stderr);
        Assert.Contains("resuming from step 2", resumed.Stdout);
        Assert.Equal(6, Runs.Summary(_dir, "flip").GetProperty("steps").GetInt64());
    }

    [Fact]
    public async Task Resuming_with_other_settings_is_refused_listing_each_difference()
    {
        await Launch("mismatch", "--workers", "2", "--steps", "2", "--checkpoint-every", "0");
        var result = await CoordinatorProcess.RunAsync(RunDeadline,
            [.. Runs.Quick(_dir, "mismatch"), "--workers", "2", "--steps", "4", "--global-batch", "64", "--seed", "12", "--resume", "latest"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("global_batch: checkpoint 32, now 64", result.Stderr);
        Assert.Contains("seed: checkpoint 11, now 12", result.Stderr);
        Assert.DoesNotContain("steps:", result.Stderr); // more steps is a legitimate change
    }

    [Fact]
    public async Task A_worker_killed_after_the_first_checkpoint_is_replaced_and_the_run_finishes()
    {
        await using var run = CoordinatorProcess.Start(null,
            [.. Runs.Quick(_dir, "recover"), "--workers", "2", "--steps", "400", "--checkpoint-every", "20", "--log-every", "50"]);
        var started = await run.WaitForLineAsync(@"Started worker slot 1 \(pid (\d+)", TimeSpan.FromSeconds(60));
        await run.WaitForLineAsync("checkpoint of step 20 committed", TimeSpan.FromSeconds(120));
        var clock = Stopwatch.StartNew();
        Process.GetProcessById(int.Parse(started.Groups[1].Value, CultureInfo.InvariantCulture)).Kill(); // SIGKILL

        var result = await run.WaitAsync(RunDeadline);
        output.WriteLine(result.Stdout + result.Stderr);
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        var summary = Runs.Summary(_dir, "recover");
        Assert.Equal(1, summary.GetProperty("restarts").GetInt32());
        Assert.Equal(400, summary.GetProperty("steps").GetInt64());
        Assert.Contains("generation aborted", result.Stdout);
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(3), $"recovery took {clock.Elapsed}");
        // The replacement reports its own peak for rank 1, as the survivor does for rank 0.
        long[] peaks = summary.GetProperty("peak_rss_bytes").EnumerateArray().Select(p => p.GetInt64()).ToArray();
        Assert.Equal(2, peaks.Length);
        Assert.All(peaks, p => Assert.True(p > 50_000_000, $"peak RSS {p} bytes, expected over 50 MB"));
    }

    [Fact]
    public async Task A_worker_stopped_by_sigterm_abandons_its_step_and_exits_143_so_it_is_not_counted_as_done()
    {
        await using var run = CoordinatorProcess.Start(null,
            [.. Runs.Quick(_dir, "term"), "--workers", "2", "--steps", "2000", "--checkpoint-every", "20", "--log-every", "100", "--max-restarts", "0"]);
        var started = await run.WaitForLineAsync(@"Started worker slot 1 \(pid (\d+)", TimeSpan.FromSeconds(60));
        await run.WaitForLineAsync("checkpoint of step 20 committed", TimeSpan.FromSeconds(120));
        using (var kill = Process.Start("kill", ["-TERM", started.Groups[1].Value]))
        {
            await kill.WaitForExitAsync();
        }

        var result = await run.WaitAsync(TimeSpan.FromSeconds(60));
        string log = File.ReadAllText(Path.Combine(_dir, "term", "logs", "worker-1.log"));
        string everything = $"coordinator exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}\nworker-1.log:\n{log}";
        Assert.True(result.ExitCode == 1, everything); // no restarts allowed: the lost rank ends the run
        // Whether the coordinator first saw the heartbeat stream close or the process exit, the exit
        // status is logged, and the worker said why it left.
        Assert.True((result.Stdout + result.Stderr).Contains("exited with status 143", StringComparison.Ordinal), everything);
        Assert.Contains("SIGTERM: abandoning the current step", log);
    }

    [Fact]
    public async Task With_max_restarts_0_a_killed_worker_fails_the_run_promptly_naming_the_rank()
    {
        await using var run = CoordinatorProcess.Start(null,
            [.. Runs.Quick(_dir, "fragile"), "--workers", "2", "--steps", "2000", "--checkpoint-every", "20", "--log-every", "100", "--max-restarts", "0"]);
        var started = await run.WaitForLineAsync(@"Started worker slot 1 \(pid (\d+)", TimeSpan.FromSeconds(60));
        await run.WaitForLineAsync("checkpoint of step 20 committed", TimeSpan.FromSeconds(120));
        var clock = Stopwatch.StartNew();
        Process.GetProcessById(int.Parse(started.Groups[1].Value, CultureInfo.InvariantCulture)).Kill();

        var result = await run.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(1, result.ExitCode);
        Assert.Matches(@"rank 1 \(worker .* on .*, step \d+, phase \w+\)", result.Stderr);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the run took {clock.Elapsed} to fail");
    }

    [Fact]
    public async Task A_worker_without_the_run_secret_is_refused()
    {
        var env = new Dictionary<string, string> { ["DISTCLIP_SECRET"] = "the-right-secret" };
        await using var coordinator = CoordinatorProcess.Start(env,
            "serve", "--bind", "127.0.0.1", "--port", "0", "--workers", "1", "--steps", "1", "--run-dir", Path.Combine(_dir, "serve"),
            "--checkpoint-dir", Path.Combine(_dir, "checkpoints"));
        var listening = await coordinator.WaitForLineAsync(@"listening at (\S+);", TimeSpan.FromSeconds(60));

        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(Path.GetDirectoryName(CoordinatorProcess.DllPath)!, "worker.dll"));
        psi.ArgumentList.Add("--coordinator");
        psi.ArgumentList.Add(listening.Groups[1].Value);
        psi.Environment["DISTCLIP_SECRET"] = "a-wrong-secret";
        using var worker = Process.Start(psi)!;
        var stderr = worker.StandardError.ReadToEndAsync();
        var stdout = worker.StandardOutput.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await worker.WaitForExitAsync(deadline.Token);

        Assert.Equal(3, worker.ExitCode);
        Assert.Contains("refused", await stdout + await stderr);
        Assert.DoesNotContain("joined", coordinator.Stdout);

        // Health checking answers without the secret (Kubernetes probes carry none); the run's own
        // calls do not: without the secret they are Unauthenticated.
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(listening.Groups[1].Value);
        var health = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new Grpc.Health.V1.HealthCheckRequest());
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        var control = new Control.V1.RunControl.RunControlClient(channel);
        var refused = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => control.ReportProgressAsync(new Control.V1.Progress()).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.Unauthenticated, refused.StatusCode);
        Assert.Equal("this run's secret is required to join it", refused.Status.Detail);

        // With the secret but without rank 0's token the caller is authenticated, not allowed: PermissionDenied.
        var withSecret = new Grpc.Core.Metadata { { Control.RunSecret.Header, "the-right-secret" } };
        var denied = await Assert.ThrowsAsync<Grpc.Core.RpcException>(
            () => control.ReportProgressAsync(new Control.V1.Progress { Generation = 1 }, withSecret).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Equal("token does not match rank 0 generation 1", denied.Status.Detail);
    }

    /// <summary>Hash of clip-micro's initial parameters for seed 11, as a worker computes it.</summary>
    private static string InitialHash()
    {
        TorchSharp.torch.manual_seed(11);
        using var model = new Model.ClipModel(ClipConfig.Load("clip-micro"));
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var (_, p) in model.named_parameters())
        {
            hash.AppendData(p.detach().contiguous().bytes);
        }

        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }
}

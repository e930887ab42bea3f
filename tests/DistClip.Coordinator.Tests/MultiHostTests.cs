using System.Diagnostics;
using Xunit.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// A real multi-host run on one machine: the coordinator and two workers each in their own network
/// namespace, joined by veth links to a bridge, reaching each other by address as separate hosts do.
/// </summary>
public sealed class MultiHostTests(ITestOutputHelper output) : IDisposable
{
    private const string Secret = "multi-host-test-secret";
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-netns-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Training_runs_across_network_namespaces_and_a_cut_link_stops_the_run_cleanly()
    {
        Assert.True(Environment.IsPrivilegedProcess, "network namespaces need root (CI runs as root)");
        await using var net = await NetworkNamespaces.CreateAsync("c", "w0", "w1");

        // 1. A short run across the three "hosts" finishes.
        await using (var coordinator = StartCoordinator(net, "across", "--steps", "6", "--checkpoint-every", "3"))
        {
            await coordinator.WaitForLineAsync("listening at", TimeSpan.FromSeconds(60));
            await using var w0 = StartWorker(net, 0);
            await using var w1 = StartWorker(net, 1);
            var result = await coordinator.WaitAsync(TimeSpan.FromMinutes(3));
            output.WriteLine(result.Stdout + result.Stderr);
            Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}\nworker 0:\n{w0.Stdout}{w0.Stderr}\nworker 1:\n{w1.Stdout}{w1.Stderr}");
            Assert.Equal(0, (await w0.WaitAsync(TimeSpan.FromSeconds(60))).ExitCode);
            Assert.Equal(0, (await w1.WaitAsync(TimeSpan.FromSeconds(60))).ExitCode);
            var summary = Runs.Summary(Path.Combine(_dir), "across");
            Assert.Equal(2, summary.GetProperty("world_size").GetInt32());
            Assert.Equal(6, summary.GetProperty("steps").GetInt64());
        }

        // 2. Cut worker 1's link mid-run: with no restarts allowed, the run must stop with an error
        //    naming the rank, and every process must exit — nothing hangs.
        await using (var coordinator = StartCoordinator(net, "cut", "--steps", "5000", "--checkpoint-every", "3", "--max-restarts", "0"))
        {
            await coordinator.WaitForLineAsync("listening at", TimeSpan.FromSeconds(60));
            await using var w0 = StartWorker(net, 0);
            await using var w1 = StartWorker(net, 1);
            await coordinator.WaitForLineAsync("checkpoint of step 3 committed", TimeSpan.FromMinutes(2));
            var clock = Stopwatch.StartNew();
            await net.CutAsync("w1");

            var result = await coordinator.WaitAsync(TimeSpan.FromSeconds(60));
            output.WriteLine($"coordinator stopped after {clock.Elapsed}:\n{result.Stdout}{result.Stderr}");
            Assert.Equal(1, result.ExitCode);
            Assert.Contains("rank 1", result.Stderr);
            Assert.Contains("no heartbeat", result.Stderr);
            var survivor = await w0.WaitAsync(TimeSpan.FromSeconds(60));
            var isolated = await w1.WaitAsync(TimeSpan.FromSeconds(120));
            output.WriteLine($"worker 0 exit {survivor.ExitCode}, worker 1 exit {isolated.ExitCode} after {clock.Elapsed}");
            Assert.True(survivor.ExitCode == 0, $"worker 0 (told to stop) exited {survivor.ExitCode}:\n{survivor.Stdout}{survivor.Stderr}");
            Assert.NotEqual(0, isolated.ExitCode);       // lost the coordinator: it says so and exits
        }
    }

    private CoordinatorProcess StartCoordinator(NetworkNamespaces net, string name, params string[] extra)
    {
        string[] args =
        [
            CoordinatorProcess.DllPath, "serve", "--bind", NetworkNamespaces.Address(0), "--port", "29400",
            "--advertise-host", NetworkNamespaces.Address(0), "--workers", "2", "--model", "clip-micro", "--global-batch", "32",
            "--seed", "11", "--eval-samples", "200", "--retrieval-samples", "0", "--log-every", "1", "--threads", "1",
            "--run-id", name, "--run-dir", Path.Combine(_dir, name), "--checkpoint-dir", Path.Combine(_dir, "checkpoints"),
            "--heartbeat-timeout", "5", "--collective-timeout", "10", .. extra,
        ];
        var psi = net.StartInfo("c", "dotnet", args);
        psi.Environment["DISTCLIP_SECRET"] = Secret;
        return CoordinatorProcess.Start(psi);
    }

    private static CoordinatorProcess StartWorker(NetworkNamespaces net, int rank)
    {
        string address = NetworkNamespaces.Address(rank + 1);
        var psi = net.StartInfo($"w{rank}", "dotnet", CoordinatorProcess.WorkerDllPath,
            "--coordinator", $"{NetworkNamespaces.Address(0)}:29400", "--preferred-rank", rank.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--bind", address, "--advertise-host", address);
        psi.Environment["DISTCLIP_SECRET"] = Secret;
        return CoordinatorProcess.Start(psi);
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// <c>coordinator launch --hostfile</c> against a real OpenSSH server that the test starts on
/// 127.0.0.1 with its own host key, user key and port.
/// </summary>
public sealed class SshLauncherTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Sshd = "/usr/sbin/sshd";
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-ssh-").FullName;
    private Process? _sshd;
    private int _port;

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(Sshd), $"{Sshd} is missing: scripts/ensure-deps.sh installs openssh-server");
        Directory.CreateDirectory("/run/sshd"); // sshd's privilege-separation directory
        await Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(_dir, "host_key"));
        await Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(_dir, "user_key"));
        File.Copy(Path.Combine(_dir, "user_key.pub"), Path.Combine(_dir, "authorized_keys"));
        _port = FreePort();
        File.WriteAllText(Path.Combine(_dir, "known_hosts"), $"[127.0.0.1]:{_port} {File.ReadAllText(Path.Combine(_dir, "host_key.pub")).Trim()}\n");
        File.WriteAllText(Path.Combine(_dir, "sshd_config"), $"""
            Port {_port}
            ListenAddress 127.0.0.1
            HostKey {Path.Combine(_dir, "host_key")}
            AuthorizedKeysFile {Path.Combine(_dir, "authorized_keys")}
            PidFile {Path.Combine(_dir, "sshd.pid")}
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            """);

        var psi = new ProcessStartInfo(Sshd) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { "-D", "-e", "-f", Path.Combine(_dir, "sshd_config") })
        {
            psi.ArgumentList.Add(a);
        }

        _sshd = Process.Start(psi)!;
        // Ready when it says so on stderr (-e), not after a guessed delay.
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _sshd.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                output.WriteLine("sshd: " + e.Data);
                if (e.Data.Contains("Server listening on 127.0.0.1", StringComparison.Ordinal))
                {
                    listening.TrySetResult();
                }
            }
        };
        _sshd.BeginErrorReadLine();
        await listening.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        if (_sshd is { HasExited: false })
        {
            _sshd.Kill(entireProcessTree: true);
            await _sshd.WaitForExitAsync();
        }

        _sshd?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task An_ssh_that_exits_before_reading_the_secret_is_a_lost_worker_not_a_crash_of_the_coordinator()
    {
        // Port 1 refuses the connection: ssh exits at once, often before the secret is written to it
        // (a broken pipe, which used to abort the coordinator with exit 134).
        string hostfile = Path.Combine(_dir, "refused-hosts");
        File.WriteAllText(hostfile, "127.0.0.1 slots=2 port=1\n");

        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(2),
            [.. Runs.Quick(_dir, "refused"), "--hostfile", hostfile, "--steps", "2", "--max-restarts", "2"]);

        Assert.True(result.ExitCode == 1, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Contains("exited with status 255", result.Stdout + result.Stderr);
        Assert.DoesNotContain("Unhandled exception", result.Stdout + result.Stderr);
    }

    /// <summary>
    /// With <c>--tls auto</c>: each slot's generated key and certificates travel on ssh's stdin, never
    /// as files it must find, into a directory on the remote host that its shell removes when the
    /// worker is done (it used to stay in the host's /tmp, private key and all).
    /// </summary>
    [Fact]
    public async Task A_hostfile_run_starts_its_workers_over_ssh_and_trains_to_the_end_over_TLS()
    {
        string hostfile = Path.Combine(_dir, "hosts");
        File.WriteAllText(hostfile, $"# two slots on this machine, through sshd\n127.0.0.1 slots=2 port={_port}\n");
        string ssh = $"-i {Path.Combine(_dir, "user_key")} -o UserKnownHostsFile={Path.Combine(_dir, "known_hosts")} -o StrictHostKeyChecking=yes";
        // The remote worker command is a script that notes each worker's --tls-dir, then becomes the worker.
        string arguments = Path.Combine(_dir, "worker-arguments");
        string worker = Path.Combine(_dir, "remote-worker.sh");
        File.WriteAllText(worker, $"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{arguments}'\nexec dotnet '{CoordinatorProcess.WorkerDllPath}' \"$@\"\n");

        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3),
            [.. Runs.Quick(_dir, "ssh"), "--hostfile", hostfile, "--ssh-options", ssh, "--steps", "4", "--tls", "auto", "--remote-worker", $"sh {worker}"]);
        output.WriteLine(result.Stdout + result.Stderr);

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        var summary = Runs.Summary(_dir, "ssh");
        Assert.Equal(2, summary.GetProperty("world_size").GetInt32());
        Assert.Equal(4, summary.GetProperty("steps").GetInt64());
        Assert.Contains("for 127.0.0.1", result.Stdout); // both slots went through the hostfile's host
        Assert.Matches(@"coordinator listening at https://", result.Stdout);
        for (int rank = 0; rank < 2; rank++)
        {
            string log = File.ReadAllText(Path.Combine(_dir, "ssh", "logs", $"worker-{rank}.log"));
            Assert.Matches(@"Collectives endpoint at https://", log);
            Assert.DoesNotContain("PRIVATE KEY", log);
        }

        // Without gpus= slot i of a host gets GPU i (the workers fall back to the CPU: this libtorch has no CUDA).
        Assert.Equal("CUDA_VISIBLE_DEVICES=0", LaunchTests.DeviceLine(Path.Combine(_dir, "ssh"), 0).Groups["seen"].Value);
        Assert.Equal("CUDA_VISIBLE_DEVICES=1", LaunchTests.DeviceLine(Path.Combine(_dir, "ssh"), 1).Groups["seen"].Value);

        // Each worker had its own key directory, and none is left on the host (the coordinator waits for its ssh sessions).
        var tlsDirectories = File.ReadAllLines(arguments).Select(l => System.Text.RegularExpressions.Regex.Match(l, @"--tls-dir (\S+)")).ToList();
        Assert.Equal(2, tlsDirectories.Count);
        Assert.All(tlsDirectories, m => Assert.True(m.Success, "a worker started without --tls-dir"));
        Assert.Equal(2, tlsDirectories.Select(m => m.Groups[1].Value).Distinct().Count());
        Assert.All(tlsDirectories, m => Assert.False(Directory.Exists(m.Groups[1].Value), $"{m.Groups[1].Value} (with the slot's private key) is still there"));
    }

    [Fact]
    public async Task Hostfile_gpus_reach_each_remote_worker_as_its_own_cuda_visible_devices()
    {
        string hostfile = Path.Combine(_dir, "hosts");
        File.WriteAllText(hostfile, $"127.0.0.1 slots=2 port={_port} gpus=GPU-7e,5\n");
        string ssh = $"-i {Path.Combine(_dir, "user_key")} -o UserKnownHostsFile={Path.Combine(_dir, "known_hosts")} -o StrictHostKeyChecking=yes";

        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3),
            [.. Runs.Quick(_dir, "gpus"), "--hostfile", hostfile, "--ssh-options", ssh, "--steps", "2", "--device", "auto"]);
        output.WriteLine(result.Stdout + result.Stderr);

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Equal("CUDA_VISIBLE_DEVICES=GPU-7e", LaunchTests.DeviceLine(Path.Combine(_dir, "gpus"), 0).Groups["seen"].Value);
        Assert.Equal("CUDA_VISIBLE_DEVICES=5", LaunchTests.DeviceLine(Path.Combine(_dir, "gpus"), 1).Groups["seen"].Value);
    }

    [Fact]
    public async Task A_host_with_more_slots_than_its_gpus_is_refused_before_ssh_starts_anything()
    {
        string hostfile = Path.Combine(_dir, "hosts");
        File.WriteAllText(hostfile, $"127.0.0.1 slots=2 port={_port} gpus=0\n");
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromSeconds(60), [.. Runs.Quick(_dir, "bad"), "--hostfile", hostfile, "--device", "cuda"]);

        Assert.True(result.ExitCode == 2, $"expected exit 2, got {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Contains("error: hostfile: 127.0.0.1 has slots=2 but gpus= lists 1 GPU (0); with --device cuda each worker needs its own GPU", result.Stderr);
        Assert.DoesNotContain("Started worker", result.Stdout);
    }

    [Fact]
    public async Task A_hostfile_whose_slots_disagree_with_workers_is_refused()
    {
        string hostfile = Path.Combine(_dir, "hosts");
        File.WriteAllText(hostfile, $"127.0.0.1 slots=3 port={_port}\n");
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromSeconds(60), [.. Runs.Quick(_dir, "bad"), "--hostfile", hostfile, "--workers", "2"]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("workers:", result.Stderr);
        Assert.Contains("3 slots", result.Stderr);
    }

    /// <summary>
    /// A remote worker that is SIGSTOPped is declared lost (no heartbeat) and its local ssh killed; its
    /// remote shell, watching the session's input, then SIGKILLs it on its host. It used to stay there,
    /// stopped, holding its memory (and on a GPU host, its GPU).
    /// </summary>
    [Fact]
    public async Task A_stopped_remote_worker_is_killed_on_its_host_when_its_ssh_is_and_the_run_finishes()
    {
        string hostfile = Path.Combine(_dir, "hosts");
        File.WriteAllText(hostfile, $"127.0.0.1 slots=2 port={_port}\n");
        string ssh = $"-i {Path.Combine(_dir, "user_key")} -o UserKnownHostsFile={Path.Combine(_dir, "known_hosts")} -o StrictHostKeyChecking=yes";
        await using var run = CoordinatorProcess.Start(null,
            [.. Runs.Quick(_dir, "stopped"), "--hostfile", hostfile, "--ssh-options", ssh, "--steps", "60", "--checkpoint-every", "10"]);
        string coordinator = (await run.WaitForLineAsync(@"coordinator listening at (\S+);", TimeSpan.FromSeconds(60))).Groups[1].Value;
        await StallTests.ReachedStep(run, 2);
        int pid = RemoteWorkerPid(coordinator, slot: 1);
        using var remote = Process.GetProcessById(pid);
        try
        {
            StallTests.Signal("STOP", pid);
            await run.WaitForLineAsync(@"Killing worker slot 1 \(pid \d+\): rank 1 .* was lost: no heartbeat", TimeSpan.FromSeconds(30));
            using var gone = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            // Not a child of this process: .NET watches it by pid until it is gone.
            await remote.WaitForExitAsync(gone.Token);
        }
        finally
        {
            if (!remote.HasExited)
            {
                remote.Kill(); // the failure is reported; no stopped process is left behind for the next test
            }
        }

        var result = await run.WaitAsync(TimeSpan.FromMinutes(4));
        output.WriteLine(result.Stdout + result.Stderr);
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        Assert.Equal(60, Runs.Summary(_dir, "stopped").GetProperty("steps").GetInt64());
        Assert.Equal(1, Runs.Summary(_dir, "stopped").GetProperty("restarts").GetInt32());
    }

    /// <summary>
    /// The pid of the worker that sshd started for <paramref name="slot"/> of the coordinator at
    /// <paramref name="coordinator"/>: the process whose program is dotnet (not the local ssh, nor the
    /// remote shell, whose command lines hold the same words).
    /// </summary>
    private static int RemoteWorkerPid(string coordinator, int slot)
    {
        var found = new List<int>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid))
            {
                continue;
            }

            string[] argv;
            try
            {
                argv = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // gone meanwhile, or not ours to read
            }

            int rank = Array.IndexOf(argv, "--preferred-rank");
            if (Path.GetFileName(argv[0]) == "dotnet" && argv.Contains(coordinator) && rank > 0 && rank + 1 < argv.Length && argv[rank + 1] == $"{slot}")
            {
                found.Add(pid);
            }
        }

        return Assert.Single(found);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        string err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} failed: {err}");
    }
}

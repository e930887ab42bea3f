using System.Diagnostics;
using System.Globalization;
using DistClip.Coordinator.Launchers;
using DistClip.Coordinator.Runs;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// The launcher's handling of a slot process that exits, with real processes: an exit is handled,
/// and its slot refilled, even when something the process left behind keeps its output open.
/// </summary>
public sealed class WorkerLauncherExitTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-launcher-").FullName;
    private readonly Membership _run;

    public WorkerLauncherExitTests() => _run = Runs.Membership(_dir, "exits", workers: 1, maxRestarts: 100);

    public void Dispose()
    {
        _run.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_worker_that_exits_while_a_child_holds_its_output_is_replaced_once_the_drain_bound_passes()
    {
        // The "worker" leaves a sleep behind that inherits its standard output and error, says its
        // pid, and exits 3. Waiting for the output to end would wait for the sleep (120 s).
        var launcher = new OrphaningLauncher(_run) { DrainBound = TimeSpan.FromSeconds(1) };
        try
        {
            launcher.Start();
            int first = launcher.ProcessIds[0];
            int second = await launcher.Replacement.Task.WaitAsync(Deadline);
            Assert.NotEqual(first, second);
            Assert.False(_run.Completion.IsCompleted);
            string log = File.ReadAllText(Path.Combine(_dir, "logs", "worker-0.log"));
            Assert.Contains("orphan ", log, StringComparison.Ordinal);
        }
        finally
        {
            await launcher.StopAsync(TimeSpan.FromSeconds(5));
            KillOrphans();
        }
    }

    [Fact]
    public async Task Handing_the_secret_to_an_ssh_that_has_closed_its_input_is_a_broken_pipe_not_a_crash()
    {
        // Probe 16, forced: the ssh end of the pipe is gone before the secret is written (an ssh that
        // exited at once), so the write is EPIPE every time rather than when a race is lost.
        await using var launcher = new SshLauncher(_run, new Uri("http://127.0.0.1:29400"), [new HostEntry("127.0.0.1", 1, 1, null)],
            slotGpus: null, sshOptions: [], "worker", NullLogger.Instance);
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec 0<&-; echo closed; exec sleep 30");
        using var ssh = Process.Start(psi)!;
        try
        {
            Assert.Equal("closed", await ssh.StandardOutput.ReadLineAsync().WaitAsync(Deadline));

            launcher.StartedOf(ssh, 0);

            // The write did meet a broken pipe: the input has no reader left.
            Assert.Throws<IOException>(() => ssh.StandardInput.BaseStream.Write(new byte[1]));
        }
        finally
        {
            ssh.Kill();
            await ssh.WaitForExitAsync();
        }
    }

    /// <summary>The sleeps the launched shells left behind, found by the pids they logged.</summary>
    private void KillOrphans()
    {
        string log = Path.Combine(_dir, "logs", "worker-0.log");
        if (!File.Exists(log))
        {
            return;
        }

        using var reader = new StreamReader(new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        while (reader.ReadLine() is { } line)
        {
            if (line.StartsWith("orphan ", StringComparison.Ordinal)
                && int.TryParse(line["orphan ".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                try
                {
                    using var orphan = Process.GetProcessById(pid);
                    orphan.Kill();
                }
                catch (ArgumentException)
                {
                    // Gone already.
                }
            }
        }
    }

    private sealed class OrphaningLauncher(Membership run) : WorkerLauncher(run, slotGpus: null, NullLogger.Instance)
    {
        private int _starts;

        /// <summary>The pid of the slot's second process: the first one's replacement.</summary>
        public TaskCompletionSource<int> Replacement { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override int Slots => 1;

        protected override void Started(Process process, int slot)
        {
            if (Interlocked.Increment(ref _starts) == 2)
            {
                Replacement.TrySetResult(process.Id);
            }
        }

        protected override string HostOf(int slot) => "test";

        protected override ProcessStartInfo StartInfo(int slot)
        {
            var psi = new ProcessStartInfo("/bin/sh");
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("sleep 120 & echo \"orphan $!\"; exit 3");
            return psi;
        }
    }
}

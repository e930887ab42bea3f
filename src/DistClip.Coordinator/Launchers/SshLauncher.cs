using System.Diagnostics;
using System.Globalization;
using DistClip.Control;
using DistClip.Coordinator.Runs;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Launchers;

/// <summary>
/// Starts workers on the hosts of a hostfile with the system <c>ssh</c>, one per slot, as mpirun
/// does: the remote host must reach the coordinator's address and have the worker program at
/// <paramref name="remoteWorker"/> (a shared file system, or the same install path). The secret is
/// written to the remote shell's standard input, never put on a command line that <c>ps</c> shows.
/// When ssh exits — the worker ended or the connection broke — the slot counts as lost. A worker
/// declared lost while ssh still runs (stopped, stuck) has its local ssh killed: the slot is replaced
/// at once. The remote shell does not become the worker but watches the session: when the
/// session's input ends (the local ssh was killed, or the connection broke), it SIGKILLs the worker,
/// which ends a stopped or stuck one too; the worker's exit status is the shell's. With
/// <paramref name="slotGpus"/> the remote shell exports each slot's GPU as CUDA_VISIBLE_DEVICES.
/// A worker's metrics listen on its host's loopback unless <paramref name="metricsBind"/> (the
/// coordinator's own <c>--metrics-bind</c>) opens them further.
/// </summary>
public sealed class SshLauncher(
    Membership run, Uri coordinator, IReadOnlyList<HostEntry> hosts, IReadOnlyList<string>? slotGpus,
    IReadOnlyList<string> sshOptions, string remoteWorker, ILogger logger, System.Net.IPAddress? metricsBind = null)
    : WorkerLauncher(run, slotGpus, logger)
{
    private readonly HostEntry[] _slotHosts = hosts.SelectMany(h => Enumerable.Repeat(h, h.Slots)).ToArray();

    protected override int Slots => _slotHosts.Length;

    /// <summary>
    /// The worker reports the remote machine's name, which the coordinator cannot know in advance;
    /// its exit is matched by slot (its preferred rank) instead.
    /// </summary>
    protected override string HostOf(int slot) => _slotHosts[slot].Host;

    protected override ProcessStartInfo StartInfo(int slot)
    {
        var host = _slotHosts[slot];
        var psi = new ProcessStartInfo("ssh");
        psi.ArgumentList.Add("-o");
        psi.ArgumentList.Add("BatchMode=yes");
        foreach (string option in sshOptions)
        {
            psi.ArgumentList.Add(option);
        }

        if (host.Port is { } port)
        {
            psi.ArgumentList.Add("-p");
            psi.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
        }

        // The end of ssh's options: the destination can never be read as one (Hostfile also refuses a leading '-').
        psi.ArgumentList.Add("--");
        psi.ArgumentList.Add(host.User is null ? host.Host : $"{host.User}@{host.Host}");
        // One remote shell line: read the secret from stdin, then become the worker. Generated TLS
        // files follow the secret on stdin, one base64 line each, into a directory only the worker's
        // user can read (mktemp -d is 0700): the key never touches the command line either. The shell
        // removes that directory when it exits, whether the worker ended, was killed or never started
        // (a hang-up or TERM becomes an exit, so the trap runs then too); the worker reads the files
        // once, at start.
        var tls = Tls?.Invoke(slot);
        string tlsSetup = tls?.GeneratedDirectory is null ? ""
            : "tls=$(mktemp -d) && trap 'rm -rf \"$tls\"' EXIT && trap 'exit 129' HUP && trap 'exit 143' TERM && " + string.Concat(WorkerTls.Files.Select(f => $"read -r l && printf '%s' \"$l\" | base64 -d > \"$tls\"/{f} && "));
        string tlsArguments = tls is null ? ""
            : tls.GeneratedDirectory is null ? " " + string.Join(' ', tls.Arguments.Select(Quote))
            : " --tls-dir \"$tls\"";
        // Then the worker runs in the background with the session's input kept on fd 3 for a
        // watcher: `cat` returns when that input ends (ssh killed or the connection gone) and the
        // watcher SIGKILLs the worker, stopped or not. The shell waits for the worker and exits with
        // its status, and stops the watcher first. (POSIX sh; an asynchronous command's standard
        // input is /dev/null unless redirected, hence fd 3.)
        psi.ArgumentList.Add(
            tlsSetup +
            $"read -r {RunSecret.EnvironmentVariable} && export {RunSecret.EnvironmentVariable} " +
            $"OMP_WAIT_POLICY=PASSIVE{GpuExport(slot)} || exit 1; exec 3<&0; " +
            $"{remoteWorker} --coordinator {Quote(coordinator.ToString())} --preferred-rank {slot} --link {Run.Settings.Config.Link} " +
            $"--bind {(Hostfile.AllLoopback([host]) ? "127.0.0.1" : "0.0.0.0")} --advertise-host {Quote(host.Host)}" +
            (metricsBind is null || System.Net.IPAddress.IsLoopback(metricsBind) ? "" : $" --metrics-bind {metricsBind}") + tlsArguments +
            " </dev/null 3<&- & w=$!; " +
            "{ cat >/dev/null; kill -KILL $w; } <&3 >/dev/null 2>&1 & g=$!; exec 3<&-; " +
            "wait $w; s=$?; kill $g 2>/dev/null; exit $s");
        return psi;
    }

    protected override void Started(Process process, int slot)
    {
        try
        {
            if (Tls?.Invoke(slot).GeneratedDirectory is { } directory)
            {
                foreach (string file in WorkerTls.Files)
                {
                    process.StandardInput.WriteLine(Convert.ToBase64String(File.ReadAllBytes(Path.Combine(directory, file))));
                }
            }

            process.StandardInput.WriteLine(Run.Settings.Secret);
            process.StandardInput.Flush();
        }
        catch (IOException)
        {
            // The ssh exited before it read the secret (an unreachable host, a refused port): a broken
            // pipe. Its exit is what counts: the launcher sees it and reports or replaces the slot
            // like any worker that died; the coordinator goes on.
        }
    }

    /// <summary>
    /// The slot's GPU for the remote shell's export. The hostfile admits only letters, digits and '-'
    /// in an id; checked again here, since this text becomes part of a shell command, and quoted.
    /// </summary>
    private string GpuExport(int slot) => GpuOf(slot) switch
    {
        null => "",
        string id when GpuInventory.IsValidId(id) => $" {GpuInventory.VisibleDevicesVariable}={Quote(id)}",
        string id => throw new ArgumentException($"'{id}' is not a GPU index or UUID", nameof(slot)),
    };

    /// <summary>POSIX single quotes for the remote shell.</summary>
    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}

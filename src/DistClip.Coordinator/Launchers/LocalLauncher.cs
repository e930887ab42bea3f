using System.Diagnostics;
using System.Globalization;
using DistClip.Control;
using DistClip.Coordinator.Runs;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Launchers;

/// <summary>
/// Starts the run's workers as child processes of this machine. Each gets OMP_WAIT_POLICY=PASSIVE in
/// its environment, which is the only way that setting reaches libtorch (docs/torchsharp.md,
/// "Threads"); its thread count is the run's <c>threads</c> setting (0: the worker divides this
/// host's cores among the run's workers here). The secret travels in the environment, never on the command line.
/// With <paramref name="slotGpus"/> each also gets its own GPU as its CUDA_VISIBLE_DEVICES.
/// </summary>
public sealed class LocalLauncher(Membership run, Uri coordinator, IReadOnlyList<string>? slotGpus, ILogger logger)
    : WorkerLauncher(run, slotGpus, logger)
{
    protected override string HostOf(int slot) => Environment.MachineName;

    protected override ProcessStartInfo StartInfo(int slot)
    {
        var psi = new ProcessStartInfo("dotnet");
        psi.ArgumentList.Add(WorkerDll);
        psi.ArgumentList.Add("--coordinator");
        psi.ArgumentList.Add(coordinator.ToString());
        psi.ArgumentList.Add("--preferred-rank");
        psi.ArgumentList.Add(slot.ToString(CultureInfo.InvariantCulture));
        psi.ArgumentList.Add("--link");
        psi.ArgumentList.Add(Run.Settings.Config.Link);
        foreach (string argument in Tls?.Invoke(slot).Arguments ?? [])
        {
            psi.ArgumentList.Add(argument);
        }

        psi.Environment[RunSecret.EnvironmentVariable] = Run.Settings.Secret;
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        if (GpuOf(slot) is { } gpu)
        {
            psi.Environment[GpuInventory.VisibleDevicesVariable] = gpu;
        }

        return psi;
    }

    /// <summary>The worker runs in the process started (dotnet runs worker.dll in its own process): the ids match.</summary>
    protected override bool IsProcessOf(WorkerIdentity worker, Process process) => worker.Pid == process.Id;
}

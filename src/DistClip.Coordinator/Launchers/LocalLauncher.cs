using System.Diagnostics;
using System.Globalization;
using DistClip.Control;
using DistClip.Coordinator.Runs;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Launchers;

/// <summary>
/// Starts the run's workers as child processes of this machine. Each gets cores / workers libtorch
/// threads and OMP_WAIT_POLICY=PASSIVE in its environment, which is the only way that setting
/// reaches libtorch (TORCHSHARP.md); the secret travels in the environment, never on the command line.
/// With <paramref name="slotGpus"/> each also gets its own GPU as its CUDA_VISIBLE_DEVICES.
/// </summary>
public sealed class LocalLauncher(Membership run, Uri coordinator, IReadOnlyList<string>? slotGpus, ILogger logger)
    : WorkerLauncher(run, slotGpus, logger)
{
    private readonly int _threads = run.Settings.Training.Threads > 0
        ? run.Settings.Training.Threads
        : Math.Max(1, Environment.ProcessorCount / run.Settings.WorldSize);

    protected override string HostOf(int slot) => Environment.MachineName;

    protected override ProcessStartInfo StartInfo(int slot)
    {
        var psi = new ProcessStartInfo("dotnet");
        psi.ArgumentList.Add(WorkerDll);
        psi.ArgumentList.Add("--coordinator");
        psi.ArgumentList.Add(coordinator.ToString());
        psi.ArgumentList.Add("--preferred-rank");
        psi.ArgumentList.Add(slot.ToString(CultureInfo.InvariantCulture));
        psi.Environment[RunSecret.EnvironmentVariable] = Run.Settings.Secret;
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        psi.Environment["OMP_NUM_THREADS"] = _threads.ToString(CultureInfo.InvariantCulture);
        psi.Environment["DISTCLIP_THREADS"] = _threads.ToString(CultureInfo.InvariantCulture);
        if (GpuOf(slot) is { } gpu)
        {
            psi.Environment[GpuInventory.VisibleDevicesVariable] = gpu;
        }

        return psi;
    }
}

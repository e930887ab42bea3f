using DistClip.Coordinator.Launchers;
using DistClip.Coordinator.Runs;
using DistClip.Training;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>What each launcher hands a worker: its own GPU as CUDA_VISIBLE_DEVICES, or nothing at all.</summary>
public sealed class WorkerGpuEnvironmentTests : IDisposable
{
    private static readonly Uri Coordinator = new("http://127.0.0.1:29400");
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-env-").FullName;
    private readonly Membership _run;

    public WorkerGpuEnvironmentTests() => _run = Runs.Membership(_dir, "env", workers: 2);

    public void Dispose()
    {
        _run.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Each_local_worker_gets_the_gpu_of_its_slot_from_the_users_list()
    {
        var gpus = GpuPlacement.ForThisHost("auto", 2, GpuInventory.Read("7,5", "/nonexistent"));
        await using var launcher = new LocalLauncher(_run, Coordinator, gpus, NullLogger.Instance);

        Assert.Equal("7", launcher.StartInfoOf(0).Environment["CUDA_VISIBLE_DEVICES"]);
        Assert.Equal("5", launcher.StartInfoOf(1).Environment["CUDA_VISIBLE_DEVICES"]);
    }

    [Fact]
    public async Task Without_a_users_list_local_slot_i_gets_gpu_i()
    {
        string driver = Path.Combine(_dir, "gpus");
        Directory.CreateDirectory(Path.Combine(driver, "0000:17:00.0"));
        Directory.CreateDirectory(Path.Combine(driver, "0000:65:00.0"));
        var gpus = GpuPlacement.ForThisHost("cuda", 2, GpuInventory.Read(null, driver));
        await using var launcher = new LocalLauncher(_run, Coordinator, gpus, NullLogger.Instance);

        Assert.Equal("0", launcher.StartInfoOf(0).Environment["CUDA_VISIBLE_DEVICES"]);
        Assert.Equal("1", launcher.StartInfoOf(1).Environment["CUDA_VISIBLE_DEVICES"]);
    }

    [Fact]
    public async Task Without_a_placement_the_local_worker_inherits_the_environment_untouched()
    {
        await using var launcher = new LocalLauncher(_run, Coordinator, slotGpus: null, NullLogger.Instance);
        var environment = launcher.StartInfoOf(1).Environment;

        // Whatever this test process has (usually nothing), the worker has the same.
        environment.TryGetValue("CUDA_VISIBLE_DEVICES", out string? seen);
        Assert.Equal(Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES"), seen);
        Assert.Equal("PASSIVE", environment["OMP_WAIT_POLICY"]);
    }

    [Fact]
    public async Task The_ssh_worker_exports_its_slots_gpu_quoted_in_the_remote_command()
    {
        HostEntry[] hosts = [new("node-a", 2, 2222, null, ["GPU-5c", "3"]), new("node-b", 1, null, null)];
        await using var launcher = new SshLauncher(_run, Coordinator, hosts, GpuPlacement.ForHosts("cuda", hosts), [], "worker", NullLogger.Instance);

        string RemoteCommand(int slot) => launcher.StartInfoOf(slot).ArgumentList[^1];

        Assert.Contains(" CUDA_VISIBLE_DEVICES='GPU-5c' || exit 1; exec 3<&0; worker ", RemoteCommand(0));
        Assert.Contains(" CUDA_VISIBLE_DEVICES='3' || exit 1; exec 3<&0; worker ", RemoteCommand(1));
        Assert.Contains(" CUDA_VISIBLE_DEVICES='0' || exit 1; exec 3<&0; worker ", RemoteCommand(2));
    }

    [Fact]
    public async Task An_ssh_worker_without_a_placement_gets_no_cuda_visible_devices()
    {
        HostEntry[] hosts = [new("node-a", 2, null, null, ["0", "1"])];
        await using var launcher = new SshLauncher(_run, Coordinator, hosts, GpuPlacement.ForHosts("cpu", hosts), [], "worker", NullLogger.Instance);

        Assert.DoesNotContain("CUDA_VISIBLE_DEVICES", launcher.StartInfoOf(0).ArgumentList[^1]);
    }
}

using DistClip.Coordinator.Launchers;

namespace DistClip.Coordinator.Tests;

/// <summary>Counting this host's GPUs without libtorch: CUDA_VISIBLE_DEVICES first, then the NVIDIA driver's directory.</summary>
public sealed class GpuInventoryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-gpus-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A stand-in for /proc/driver/nvidia/gpus: one directory per GPU, named by PCI address as the driver does.</summary>
    private string DriverDirectory(int gpus)
    {
        string root = Path.Combine(_dir, "gpus");
        Directory.CreateDirectory(root);
        for (int i = 0; i < gpus; i++)
        {
            Directory.CreateDirectory(Path.Combine(root, $"0000:{i + 0x17:x2}:00.0"));
        }

        return root;
    }

    [Fact]
    public void Without_cuda_visible_devices_each_gpu_of_the_driver_directory_counts_and_gets_its_index()
    {
        var gpus = GpuInventory.Read(null, DriverDirectory(4));

        Assert.Equal(["0", "1", "2", "3"], gpus.Ids);
        Assert.Contains("lists 4", gpus.Source);
    }

    [Fact]
    public void Cuda_visible_devices_wins_over_the_driver_directory_and_keeps_its_entries()
    {
        var gpus = GpuInventory.Read("GPU-8f2c1a0e-2b4d-11ee-be56-0242ac120002, MIG-4b1e, 5", DriverDirectory(8));

        Assert.Equal(["GPU-8f2c1a0e-2b4d-11ee-be56-0242ac120002", "MIG-4b1e", "5"], gpus.Ids);
        Assert.StartsWith("CUDA_VISIBLE_DEVICES=", gpus.Source);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void An_empty_cuda_visible_devices_means_no_gpu_even_where_the_driver_lists_some(string empty)
    {
        var gpus = GpuInventory.Read(empty, DriverDirectory(2));

        Assert.Equal(0, gpus.Count);
        Assert.Equal("CUDA_VISIBLE_DEVICES is set but empty", gpus.Source);
    }

    [Fact]
    public void Without_the_driver_directory_there_is_no_gpu()
    {
        var gpus = GpuInventory.Read(null, Path.Combine(_dir, "no-such-driver"));

        Assert.Equal(0, gpus.Count);
        Assert.Contains("does not exist", gpus.Source);
        Assert.Equal(0, GpuInventory.Read(null, DriverDirectory(0)).Count);
    }

    [Theory]
    [InlineData("0", true)]
    [InlineData("GPU-8f2c1a0e-2b4d-11ee-be56-0242ac120002", true)]
    [InlineData("MIG-GPU-8f2c1a0e", true)]
    [InlineData("", false)]
    [InlineData("0;id", false)]
    [InlineData("'0'", false)]
    [InlineData("$(id)", false)]
    [InlineData("0 1", false)]
    [InlineData("0\n", false)]
    public void Only_indices_and_uuids_are_gpu_ids(string id, bool valid) =>
        Assert.Equal(valid, GpuInventory.IsValidId(id));
}

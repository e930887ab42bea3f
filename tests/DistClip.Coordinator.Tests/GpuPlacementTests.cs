using DistClip.Config;
using DistClip.Coordinator.Launchers;
using DistClip.Model;

namespace DistClip.Coordinator.Tests;

/// <summary>Which GPU each worker slot gets, and every placement refused before a worker starts.</summary>
public sealed class GpuPlacementTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-placement-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static GpuInventory Listed(string visibleDevices) => GpuInventory.Read(visibleDevices, "/nonexistent");

    private static GpuInventory None => GpuInventory.Read(null, "/nonexistent");

    [Fact]
    public void Local_slot_i_gets_the_ith_gpu_the_user_listed()
    {
        Assert.Equal(["7", "5"], GpuPlacement.ForThisHost("auto", 2, Listed("7,5")));
        Assert.Equal(["GPU-a1", "GPU-b2"], GpuPlacement.ForThisHost("cuda", 2, Listed("GPU-a1,GPU-b2,GPU-c3")));
    }

    [Fact]
    public void Without_a_user_list_local_slot_i_gets_gpu_i()
    {
        string driver = Path.Combine(_dir, "gpus");
        foreach (string pci in new[] { "0000:17:00.0", "0000:65:00.0", "0000:ca:00.0", "0000:e3:00.0" })
        {
            Directory.CreateDirectory(Path.Combine(driver, pci));
        }

        Assert.Equal(["0", "1", "2"], GpuPlacement.ForThisHost("cuda", 3, GpuInventory.Read(null, driver)));
    }

    [Fact]
    public void Device_cpu_leaves_the_environment_alone_whatever_the_host_has()
    {
        Assert.Null(GpuPlacement.ForThisHost("cpu", 8, Listed("0,1")));
        Assert.Null(GpuPlacement.ForThisHost("cpu", 2, None));
        Assert.Null(GpuPlacement.ForHosts("cpu", [new HostEntry("a", 4, null, null, ["0"])]));
    }

    [Fact]
    public void Auto_on_a_host_without_gpus_trains_on_the_cpu_and_sets_nothing()
    {
        Assert.Null(GpuPlacement.ForThisHost("auto", 8, None));
        Assert.Null(GpuPlacement.ForThisHost("auto", 2, Listed("")));
    }

    [Fact]
    public void Cuda_with_more_local_workers_than_gpus_is_refused_naming_workers_and_the_gpus()
    {
        var e = Assert.Throws<ConfigException>(() => GpuPlacement.ForThisHost("cuda", 8, Listed("0,1")));

        Assert.Equal("workers", e.Field);
        Assert.StartsWith(
            "workers: 8 workers on this host but only 2 GPUs (CUDA_VISIBLE_DEVICES=0,1); with --device cuda each worker needs its own GPU",
            e.Message);
        Assert.Contains("--workers 2 or fewer", e.Message);
    }

    [Fact]
    public void Cuda_on_a_host_without_gpus_is_refused_naming_device()
    {
        var e = Assert.Throws<ConfigException>(() => GpuPlacement.ForThisHost("cuda", 1, None));
        var empty = Assert.Throws<ConfigException>(() => GpuPlacement.ForThisHost("cuda", 2, Listed("")));

        Assert.Equal("device", e.Field);
        Assert.Contains("this host has none", e.Message);
        Assert.Contains("--device cpu", e.Message);
        Assert.Contains("CUDA_VISIBLE_DEVICES is set but empty", empty.Message);
    }

    [Fact]
    public void Auto_with_some_gpus_but_fewer_than_workers_is_refused_and_says_how_to_use_the_cpu()
    {
        var e = Assert.Throws<ConfigException>(() => GpuPlacement.ForThisHost("auto", 2, Listed("3")));

        Assert.Equal("workers", e.Field);
        Assert.StartsWith("workers: 2 workers on this host but only 1 GPU (CUDA_VISIBLE_DEVICES=3); with --device auto each worker needs its own GPU", e.Message);
        Assert.Contains("--device cpu to run 2 workers on the CPU", e.Message);
    }

    [Theory]
    [InlineData("0,1;reboot")]
    [InlineData("0,,1")]
    public void A_malformed_cuda_visible_devices_is_refused_by_name(string visibleDevices)
    {
        var e = Assert.Throws<ConfigException>(() => GpuPlacement.ForThisHost("auto", 2, Listed(visibleDevices)));

        Assert.Equal("CUDA_VISIBLE_DEVICES", e.Field);
    }

    [Fact]
    public void A_gpu_listed_twice_would_be_shared_and_is_refused()
    {
        var e = Assert.Throws<ConfigException>(() => GpuPlacement.ForThisHost("cuda", 2, Listed("4,4")));

        Assert.Equal("CUDA_VISIBLE_DEVICES", e.Field);
        Assert.Contains("GPU 4 twice", e.Message);
    }

    [Fact]
    public void Hostfile_slots_take_their_hosts_gpus_in_order_or_their_index()
    {
        HostEntry[] hosts =
        [
            new("node-a", 2, null, null, ["4", "GPU-5c"]),
            new("node-b", 3, null, null),
            new("node-c", 1, null, null, ["1", "2"]),
        ];

        Assert.Equal(["4", "GPU-5c", "0", "1", "2", "1"], GpuPlacement.ForHosts("cuda", hosts));
    }

    [Fact]
    public void A_host_on_two_lines_numbers_its_slots_on_and_never_shares_a_gpu()
    {
        Assert.Equal(["0", "1", "2"], GpuPlacement.ForHosts("auto", [new("node-a", 2, null, null), new("node-a", 1, 2222, null)]));

        var e = Assert.Throws<ConfigException>(() =>
            GpuPlacement.ForHosts("auto", [new("node-a", 2, null, null), new("NODE-A", 1, null, null, ["1"])]));
        Assert.Equal("hostfile", e.Field);
        Assert.Contains("GPU 1 to two workers", e.Message);
    }

    [Theory]
    [InlineData("cuda")]
    [InlineData("auto")]
    public void A_host_with_more_slots_than_its_gpus_is_refused_naming_the_host(string device)
    {
        var e = Assert.Throws<ConfigException>(() =>
            GpuPlacement.ForHosts(device, [new("node-a", 2, null, null), new("node-b", 4, null, null, ["0", "1"])]));

        Assert.Equal("hostfile", e.Field);
        Assert.StartsWith($"hostfile: node-b has slots=4 but gpus= lists 2 GPUs (0,1); with --device {device} each worker needs its own GPU", e.Message);
    }

    [Fact]
    public void Hostfile_gpus_are_parsed_per_host()
    {
        string path = Path.Combine(_dir, "hosts");
        File.WriteAllText(path, """
            node-a slots=4 gpus=0,1,4,5   # four of its eight
            node-b slots=2 user=train gpus=GPU-8f2c1a0e-2b4d,MIG-4b1e
            node-c slots=2 port=2222
            """);

        var hosts = Hostfile.Parse(path);

        Assert.Equal(["0", "1", "4", "5"], hosts[0].Gpus);
        Assert.Equal(["GPU-8f2c1a0e-2b4d", "MIG-4b1e"], hosts[1].Gpus);
        Assert.Equal("train", hosts[1].User);
        Assert.Null(hosts[2].Gpus);
    }

    [Theory]
    [InlineData("gpus=", "gpus must list GPU indices or UUIDs")]
    [InlineData("gpus=0,,1", "not '0,,1'")]
    [InlineData("gpus=0,1,", "gpus must list")]
    [InlineData("gpus=0;reboot", "not '0;reboot'")]
    [InlineData("gpus=$(id)", "gpus must list")]
    [InlineData("gpus='0'", "gpus must list")]
    [InlineData("gpus=0,1,0", "gpus lists 0 twice")]
    public void A_malformed_gpus_key_is_refused_by_name_with_its_line(string key, string expected)
    {
        string path = Path.Combine(_dir, "hosts");
        File.WriteAllText(path, $"node-a slots=2\nnode-b slots=2 {key}\n");

        var e = Assert.Throws<ConfigException>(() => Hostfile.Parse(path));

        Assert.Equal("hostfile", e.Field);
        Assert.Contains($"{path}:2: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("-oProxyCommand=touch_pwned", "is not a host name")]
    [InlineData("host;reboot", "is not a host name")]
    [InlineData("$(id)", "is not a host name")]
    [InlineData("node-b user=-oProxyCommand=x", "is not a user name")]
    [InlineData("node-b user=a;b", "is not a user name")]
    public void A_host_or_user_that_ssh_could_read_as_an_option_or_a_shell_could_expand_is_refused(string line, string expected)
    {
        string path = Path.Combine(_dir, "hosts");
        File.WriteAllText(path, $"node-a slots=1\n{line}\n");

        var e = Assert.Throws<ConfigException>(() => Hostfile.Parse(path));

        Assert.Equal("hostfile", e.Field);
        Assert.Contains($"{path}:2: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Names_addresses_and_users_of_real_clusters_are_accepted()
    {
        string path = Path.Combine(_dir, "hosts");
        File.WriteAllText(path, "gpu-node-01.cluster.local slots=2 user=ml_ops\n10.0.0.5\n[fe80::1] user=a.b-c\n");

        Assert.Equal(["gpu-node-01.cluster.local", "10.0.0.5", "[fe80::1]"], Hostfile.Parse(path).Select(h => h.Host));
    }
}

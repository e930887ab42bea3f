using DistClip.Config;
using DistClip.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training;

/// <summary>Process-wide libtorch settings: the device and the intra-op thread count.</summary>
public static class TorchRuntime
{
    /// <summary>Which GPUs CUDA shows this process; a launcher gives each worker its own.</summary>
    private const string VisibleDevicesVariable = "CUDA_VISIBLE_DEVICES";

    /// <summary>
    /// Picks the device at run time: a CPU build of the native bundle has no CUDA, and
    /// <c>torch.device("cuda")</c> throws there, so "auto" asks libtorch first. A process sees only
    /// the GPUs of its CUDA_VISIBLE_DEVICES, so a worker given one GPU trains on it as cuda:0.
    /// </summary>
    /// <exception cref="ConfigException">cuda was asked for and this process sees no CUDA device.</exception>
    public static Device SelectDevice(string requested)
    {
        bool cuda = CudaDeviceCount() > 0;
        return requested switch
        {
            "auto" => cuda ? torch.CUDA : torch.CPU,
            "cpu" => torch.CPU,
            "cuda" when cuda => torch.CUDA,
            "cuda" => throw new ConfigException("device",
                $"cuda was requested but libtorch sees no CUDA device here ({VisibleDevices()}); check that {VisibleDevicesVariable} names " +
                "a GPU of this host and that the programs were built with -p:DistClipTorchBackend=cuda, or use --device cpu"),
            _ => throw new ArgumentOutOfRangeException(nameof(requested), requested, "device must be auto, cpu or cuda"),
        };
    }

    /// <summary>The CUDA devices this process sees: 0 with the CPU build of libtorch or without a GPU.</summary>
    public static int CudaDeviceCount() => torch.cuda.is_available() ? torch.cuda.device_count() : 0;

    /// <summary>
    /// One line for a log: the device, and what CUDA shows this process (which also tells, on a CPU
    /// build, which GPU a launcher meant it to have).
    /// </summary>
    public static string Describe(Device device)
    {
        string seen = $"{VisibleDevices()}; {CudaDeviceCount()} CUDA device(s) visible";
        return device.type == DeviceType.CUDA
            ? $"cuda:{Math.Max(0, (int)device.index)} ({seen})"
            : $"cpu with {torch.get_num_threads()} thread(s) ({seen})";
    }

    private static string VisibleDevices() =>
        Environment.GetEnvironmentVariable(VisibleDevicesVariable) is { } ids ? $"{VisibleDevicesVariable}={ids}" : $"{VisibleDevicesVariable} not set";

    /// <summary>Sets libtorch's intra-op threads (0 leaves its default).</summary>
    public static void SetThreads(int threads)
    {
        if (threads > 0)
        {
            torch.set_num_threads(threads);
        }
    }
}

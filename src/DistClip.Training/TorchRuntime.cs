using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training;

/// <summary>Process-wide libtorch settings: the device and the intra-op thread count.</summary>
public static class TorchRuntime
{
    /// <summary>
    /// Picks the device at run time: a CPU build of the native bundle has no CUDA, and
    /// <c>torch.device("cuda")</c> throws there, so "auto" asks libtorch first.
    /// </summary>
    public static Device SelectDevice(string requested)
    {
        bool cuda = torch.cuda.is_available();
        return requested switch
        {
            "auto" => cuda ? torch.CUDA : torch.CPU,
            "cpu" => torch.CPU,
            "cuda" when cuda => torch.CUDA,
            "cuda" => throw new InvalidOperationException(
                "device: cuda was requested but libtorch reports no CUDA device; build with -p:DistClipTorchBackend=cuda on a GPU machine or use --device cpu"),
            _ => throw new ArgumentOutOfRangeException(nameof(requested), requested, "device must be auto, cpu or cuda"),
        };
    }

    /// <summary>Sets libtorch's intra-op threads (0 leaves its default).</summary>
    public static void SetThreads(int threads)
    {
        if (threads > 0)
        {
            torch.set_num_threads(threads);
        }
    }
}

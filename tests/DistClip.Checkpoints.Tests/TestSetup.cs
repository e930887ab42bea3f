using System.Runtime.CompilerServices;
using TorchSharp;

// The round-trip tests seed and read libtorch's global generator; another test drawing from it in
// parallel would make them flaky. The file-system tests are fast enough to run one at a time too.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace DistClip.Checkpoints.Tests;

internal static class TestSetup
{
    /// <summary>One intra-op thread: the machine has two cores and the models here are tiny.</summary>
    [ModuleInitializer]
    internal static void Initialize() => torch.set_num_threads(1);
}

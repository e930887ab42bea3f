using System.Runtime.CompilerServices;
using TorchSharp;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace DistClip.Model.Tests;

internal static class TestSetup
{
    /// <summary>
    /// Tests run one at a time on two threads: the machine has two cores and libtorch's OpenMP
    /// workers spin when oversubscribed (see docs/torchsharp.md, "Threads").
    /// </summary>
    [ModuleInitializer]
    internal static void Initialize() => torch.set_num_threads(2);
}

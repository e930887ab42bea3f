using System.Runtime.CompilerServices;
using TorchSharp;

// One model is trained for the whole assembly and every test runs libtorch on both cores:
// tests side by side would only oversubscribe them (docs/torchsharp.md, "Threads").
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace DistClip.Cli.Tests;

internal static class TestSetup
{
    [ModuleInitializer]
    internal static void Initialize() => torch.set_num_threads(2);
}

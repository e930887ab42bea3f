using DistClip.Checkpoints;
using DistClip.Training.Checkpointing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using OptimizerState = DistClip.Training.Checkpointing.OptimizerState;

namespace DistClip.Training.Tests.Checkpointing;

public sealed class TorchStateTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "distclip-torchstate-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public void ResumedModelAndAdamWTakeABitIdenticalNextStep()
    {
        torch.manual_seed(7);
        using Tensor x = torch.randn(32, 8);
        using Tensor y = torch.randn(32, 4);
        using Sequential model = MakeModel();
        using AdamW optimizer = MakeOptimizer(model);
        for (int i = 0; i < 3; i++)
        {
            Step(model, optimizer, x, y);
        }

        CheckpointStore store = new(new CheckpointOptions(_root, "run-1", 3));
        store.Commit(3, new System.Text.Json.Nodes.JsonObject { ["epoch"] = 0 }, System.Text.Json.JsonSerializer.SerializeToElement(new { model = "clip-tiny" }), new Dictionary<string, Action<Stream>>
        {
            [CheckpointFiles.Model] = s => ModelState.Save(model, s),
            [CheckpointFiles.Optimizer] = s => OptimizerState.Save(optimizer, s),
        }, CancellationToken.None);
        List<byte[]> saved = Snapshot(model);
        Step(model, optimizer, x, y); // the uninterrupted run's step 4
        List<byte[]> uninterrupted = Snapshot(model);

        torch.manual_seed(12345); // different initial weights: the load must overwrite all of them
        using Sequential resumed = MakeModel();
        using AdamW resumedOptimizer = MakeOptimizer(resumed);
        ResolvedCheckpoint checkpoint = store.ResolveLatest(CancellationToken.None)!;
        using (Stream s = checkpoint.Open(CheckpointFiles.Model))
        {
            ModelState.Load(resumed, s);
        }
        using (Stream s = checkpoint.Open(CheckpointFiles.Optimizer))
        {
            OptimizerState.Load(resumedOptimizer, s);
        }
        AssertSameBytes(saved, Snapshot(resumed), "loaded weights");

        Step(resumed, resumedOptimizer, x, y); // the resumed run's step 4
        AssertSameBytes(uninterrupted, Snapshot(resumed), "parameters after the next step");
    }

    [Fact]
    public void LoadingWeightsIntoADifferentShapeThrows()
    {
        using Sequential model = MakeModel();
        using var stream = new MemoryStream();
        ModelState.Save(model, stream);
        stream.Position = 0;
        using Sequential other = nn.Sequential(("0", nn.Linear(8, 17)), ("1", nn.ReLU()), ("2", nn.Linear(17, 4)));
        Assert.ThrowsAny<Exception>(() => ModelState.Load(other, stream));
    }

    [Fact]
    public void RestoredRngStateRepeatsTheSameDraws()
    {
        torch.manual_seed(3);
        using (torch.rand(10)) { } // move the generator off its seeded start
        byte[] state = RngState.Capture();
        using Tensor first = torch.rand(16);
        using (torch.rand(100)) { }
        RngState.Restore(state);
        using Tensor again = torch.rand(16);
        Assert.True(first.bytes.SequenceEqual(again.bytes), "draws after restoring the RNG state differ from the first ones");
        Assert.NotEmpty(state);
    }

    private static Sequential MakeModel() =>
        nn.Sequential(("0", nn.Linear(8, 16)), ("1", nn.ReLU()), ("2", nn.Linear(16, 4)));

    private static AdamW MakeOptimizer(Sequential model) =>
        torch.optim.AdamW(model.parameters(), lr: 0.01, weight_decay: 0.1);

    private static void Step(Sequential model, AdamW optimizer, Tensor x, Tensor y)
    {
        using DisposeScope scope = torch.NewDisposeScope();
        optimizer.zero_grad();
        Tensor loss = nn.functional.mse_loss(model.forward(x), y);
        loss.backward();
        optimizer.step();
    }

    private static List<byte[]> Snapshot(Sequential model) =>
        model.parameters().Select(p => p.bytes.ToArray()).ToList();

    private static void AssertSameBytes(List<byte[]> expected, List<byte[]> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].AsSpan().SequenceEqual(actual[i]), $"{what}: parameter {i} differs bitwise");
        }
    }
}

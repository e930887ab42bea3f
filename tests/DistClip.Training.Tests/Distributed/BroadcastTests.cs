using DistClip.Collectives.InMemory;
using DistClip.Config;
using DistClip.Model;
using DistClip.Training.Distributed;
using TorchSharp;
using static DistClip.Training.Tests.Distributed.ClusterHarness;
using static TorchSharp.torch;

namespace DistClip.Training.Tests.Distributed;

public class BroadcastTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TextConfig Text = new(TextConfig.Causal, VocabSize: 100, ContextLength: 8, Width: 32, Layers: 1, Heads: 4);

    // A ResNet tower: BatchNorm running statistics (float) and batch counters (int64) are buffers.
    private static readonly ClipConfig TinyResNet = new("test-rn", EmbedDim: 24,
        new VisionConfig(VisionConfig.ResNet, ImageSize: 32, Channels: 3, Width: 4, ResNetLayers: [1, 1, 1, 1], Heads: 2), Text);

    private static readonly ClipConfig TinyMlp = new("test-mlp", EmbedDim: 24, new VisionConfig(VisionConfig.Mlp, ImageSize: 28, Channels: 1, HiddenDim: 16), Text);

    [Fact]
    public async Task Every_rank_gets_the_roots_parameters_and_buffers_bit_for_bit()
    {
        const int world = 3;
        const int root = 1;
        var models = Enumerable.Range(0, world).Select(r => NewModel(seed: 40 + r, TinyResNet)).ToArray();
        using (torch.no_grad())
        {
            for (int r = 0; r < world; r++)
            {
                foreach (var (_, buffer) in models[r].named_buffers())
                {
                    using var value = (r + 2).ToScalar();
                    buffer.fill_(value); // running stats and counters differ per rank too
                }
            }
        }

        Assert.Contains(models[0].named_buffers(), b => b.buffer.dtype == ScalarType.Int64);
        var expected = Bytes(models[root]);
        var groups = InMemoryCollectives.CreateGroups(world, options: GroupOptions);
        try
        {
            var outcomes = RankThreads.Run(world, TimeSpan.FromSeconds(30), rank =>
            {
                using var collectives = new GroupStepCollectives(groups[rank]);
                collectives.BroadcastParameters(models[rank], root, CancellationToken.None);
                return Bytes(models[rank]);
            });

            foreach (var outcome in outcomes)
            {
                var actual = outcome.Value;
                Assert.Equal(expected.Keys, actual.Keys);
                foreach (var (name, bytes) in expected)
                {
                    Assert.True(bytes.AsSpan().SequenceEqual(actual[name]), $"rank {outcome.Rank}: {name} is not rank {root}'s");
                }
            }
        }
        finally
        {
            await DisposeAllAsync(groups, models);
        }
    }

    [Fact]
    public async Task A_rank_with_another_model_makes_every_rank_refuse_instead_of_hanging()
    {
        const int world = 3;
        var models = Enumerable.Range(0, world).Select(r => NewModel(seed: 1, r == 2 ? TinyMlp with { EmbedDim = 16 } : TinyMlp)).ToArray();
        var groups = InMemoryCollectives.CreateGroups(world, options: GroupOptions);
        try
        {
            var outcomes = RankThreads.Run(world, TimeSpan.FromSeconds(30), rank =>
            {
                using var collectives = new GroupStepCollectives(groups[rank]);
                collectives.BroadcastParameters(models[rank], root: 0, CancellationToken.None);
                return true;
            });

            foreach (var outcome in outcomes)
            {
                var error = Assert.IsType<InvalidOperationException>(outcome.Error);
                Assert.Contains("rank(s) 2", error.Message);
            }

            // The differing rank names the first differing tensor, e.g. text_projection [32, 16] vs [32, 24].
            output.WriteLine(outcomes[2].Error!.Message);
            Assert.Contains("rank 2 has '", outcomes[2].Error!.Message);
        }
        finally
        {
            await DisposeAllAsync(groups, models);
        }
    }

    /// <summary>Every parameter and buffer, as raw bytes (whatever its type).</summary>
    private static Dictionary<string, byte[]> Bytes(nn.Module model)
    {
        using var scope = torch.NewDisposeScope();
        return model.named_parameters().Select(p => (p.name, (Tensor)p.parameter))
            .Concat(model.named_buffers())
            .ToDictionary(t => t.Item1, t => t.Item2.detach().cpu().contiguous().bytes.ToArray());
    }
}

using DistClip.Collectives.InMemory;
using DistClip.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static DistClip.Training.Tests.Distributed.ClusterHarness;
using static TorchSharp.torch;

namespace DistClip.Training.Tests.Distributed;

/// <summary>ReduceGradients on hand-made parameters, where every expected bit is known.</summary>
public class GradientReductionTests
{
    private static readonly long[][] Shapes = [[3, 4], [5], [2, 2]];
    private const int A = 0, B = 1, C = 2;

    [Fact]
    public async Task Null_gradients_count_as_zeros_where_another_rank_has_one_and_stay_null_where_none_has()
    {
        // Round 1: a on both ranks, b on rank 1 only, c nowhere.
        // Round 2: rank 0 writes a into its buffer view (as backward does) and drops b (as
        // Module.zero_grad does); rank 1 replaces a with a fresh tensor (as a checkpoint load might).
        float[][][] round1 = [Values(0, 1), Values(1, 1)];
        float[][][] round2 = [Values(0, 2), Values(1, 2)];
        var groups = InMemoryCollectives.CreateGroups(2, options: GroupOptions);
        try
        {
            var outcomes = RankThreads.Run(2, TimeSpan.FromSeconds(30), rank =>
            {
                using var scope = torch.NewDisposeScope();
                var ps = Shapes.Select(s => new Parameter(torch.zeros(s))).ToArray();
                // 16-byte buckets: one or two parameters each, so several all-reduces pipeline.
                using var collectives = new GroupStepCollectives(groups[rank], new GroupStepOptions { BucketBytes = 16 });
                var mine = rank == 0 ? round1[0] : round1[1];
                SetGrad(ps[A], mine[A]);
                if (rank == 1)
                {
                    SetGrad(ps[B], mine[B]);
                }

                collectives.ReduceGradients(ps, CancellationToken.None);
                var first = ps.Select(Grad).ToArray();
                int inBuffer = collectives.GradientsInBuffer(ps);

                var next = rank == 0 ? round2[0] : round2[1];
                if (rank == 0)
                {
                    using (var g = ps[A].grad!)
                    {
                        g.copy_(Tensor(next[A], ps[A]));
                    }

                    ps[B].grad = null;
                }
                else
                {
                    ps[A].grad = Tensor(next[A], ps[A]);
                    using var b = ps[B].grad!;
                    b.copy_(Tensor(next[B], ps[B]));
                }

                collectives.ReduceGradients(ps, CancellationToken.None);
                return (First: first, InBuffer: inBuffer, Second: ps.Select(Grad).ToArray());
            }).Select(o => o.Value).ToArray();

            foreach (var (first, inBuffer, second) in outcomes)
            {
                Assert.Equal(Sum(round1[0][A], round1[1][A]), first[A]);
                Assert.Equal(round1[1][B], first[B]);
                Assert.Null(first[C]);
                Assert.Equal(2, inBuffer); // a and b now live in the reduction buffer

                Assert.Equal(Sum(round2[0][A], round2[1][A]), second[A]);
                Assert.Equal(round2[1][B], second[B]);
                Assert.Null(second[C]);
            }
        }
        finally
        {
            foreach (var group in groups)
            {
                await group.DisposeAsync();
            }
        }
    }

    /// <summary>Per parameter, its numel values: distinct for every (rank, round).</summary>
    private static float[][] Values(int rank, int round) =>
        [.. Shapes.Select((shape, i) => Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b))
            .Select(j => (float)(Math.Sin((rank * 131) + (round * 17) + (i * 7) + j) / 3))
            .ToArray())];

    private static float[] Sum(float[] x, float[] y) => [.. x.Zip(y, (a, b) => a + b)];

    private static Tensor Tensor(float[] values, Parameter p) => torch.tensor(values).reshape(p.shape);

    private static void SetGrad(Parameter p, float[] values) => p.grad = Tensor(values, p);

    private static float[]? Grad(Parameter p)
    {
        using var grad = p.grad;
        return grad is null ? null : Floats(grad);
    }
}

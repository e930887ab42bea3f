using DistClip.Collectives;
using DistClip.Collectives.InMemory;
using DistClip.Training.Distributed;
using DistClip.Training.Steps;
using TorchSharp;
using TorchSharp.Modules;
using static DistClip.Training.Tests.Distributed.ClusterHarness;
using static TorchSharp.torch;

namespace DistClip.Training.Tests.Distributed;

/// <summary>
/// The staged gradient reduction a training step uses to hide communication behind backward: a
/// released stage is summed while later stages are still being computed.
/// </summary>
public class StagedReductionTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_released_stage_is_summed_before_the_next_is_released_and_every_gradient_ends_as_the_sum()
    {
        var groups = InMemoryCollectives.CreateGroups(2, options: GroupOptions);
        try
        {
            var outcomes = RankThreads.Run(2, Deadline, rank =>
            {
                using var scope = torch.NewDisposeScope();
                // Stage 0: a [3, 4] and b [5]; stage 1: c [2, 2] and d [7], d without a gradient on rank 0.
                var ps = new[] { new Parameter(torch.zeros(3, 4)), new Parameter(torch.zeros(5)), new Parameter(torch.zeros(2, 2)), new Parameter(torch.zeros(7)) };
                IReadOnlyList<Parameter>[] stages = [[ps[0], ps[1]], [ps[2], ps[3]]];
                using var collectives = new GroupStepCollectives(groups[rank], new GroupStepOptions { BucketBytes = 16 });
                float[]? early = null;
                for (int round = 0; round < 2; round++)
                {
                    // Round 0 installs the buffer views; round 1 zeroes them as the optimizer's zero_grad does
                    // and writes the gradients in place, as backward does.
                    foreach (var p in ps)
                    {
                        using var grad = p.grad;
                        grad?.zero_();
                    }

                    SetGrads(ps[..2], rank, round);
                    using var reduction = (GradientReducer.Reduction)collectives.BeginGradientReduction(stages, null, CancellationToken.None);
                    reduction.Release(0);
                    Assert.True(reduction.Sent(0).Wait(Deadline), "stage 0 was not summed while stage 1 was unreleased");
                    if (round == 1)
                    {
                        early = Floats(ps[0].grad!); // already the sum: the wire did not wait for stage 1
                    }

                    SetGrads(ps[2..3], rank, round);
                    if (rank == 1)
                    {
                        SetGrads(ps[3..], rank, round);
                    }

                    reduction.Release(1);
                    reduction.Complete();
                }

                return (Early: early!, Final: ps.Select(p => Floats(p.grad!)).ToArray());
            }).Select(o => o.Value).ToArray();

            foreach (var (early, final) in outcomes)
            {
                Assert.Equal(Sum(0, 1), early);
                for (int i = 0; i < 3; i++)
                {
                    Assert.Equal(Sum(i, 1), final[i]);
                }

                Assert.Equal(Values(1, 3, 1), final[3]); // only rank 1 had one: zeros elsewhere
            }

            Assert.True(BitIdentical(outcomes[0].Final.SelectMany(f => f).ToArray(), outcomes[1].Final.SelectMany(f => f).ToArray()));
        }
        finally
        {
            foreach (var group in groups)
            {
                await group.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Gradients_that_cannot_live_in_the_buffer_are_copied_in_and_out_stage_by_stage()
    {
        // float64 parameters take the copy path (as CUDA ones do): packed when their stage is
        // released, written back at completion. Values are multiples of 1/4: exact in float32.
        var groups = InMemoryCollectives.CreateGroups(2, options: GroupOptions);
        try
        {
            var outcomes = RankThreads.Run(2, Deadline, rank =>
            {
                using var scope = torch.NewDisposeScope();
                var ps = new[] { new Parameter(torch.zeros(3, dtype: ScalarType.Float64)), new Parameter(torch.zeros(2, dtype: ScalarType.Float64)) };
                using var collectives = new GroupStepCollectives(groups[rank]);
                var results = new List<double[]>();
                for (int round = 0; round < 2; round++)
                {
                    ps[0].grad = torch.tensor(new[] { rank + round + 0.25, 1.5, -2.0 });
                    ps[1].grad = torch.tensor(new[] { rank * 0.5, round * 0.75 });
                    using var reduction = collectives.BeginGradientReduction([[ps[0]], [ps[1]]], null, CancellationToken.None);
                    reduction.Release(0);
                    reduction.Release(1);
                    reduction.Complete();
                    results.Add([.. ps[0].grad!.data<double>(), .. ps[1].grad!.data<double>()]);
                    Assert.Equal(ScalarType.Float64, ps[0].grad!.dtype);
                }

                return results;
            }).Select(o => o.Value).ToArray();

            foreach (var results in outcomes)
            {
                Assert.Equal(new[] { 1.5, 3.0, -4.0, 0.5, 0.0 }, results[0]);
                Assert.Equal(new[] { 3.5, 3.0, -4.0, 0.5, 1.5 }, results[1]);
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

    [Fact]
    public async Task Stages_are_released_in_order_and_all_before_completion()
    {
        var groups = InMemoryCollectives.CreateGroups(1, options: GroupOptions);
        try
        {
            using var scope = torch.NewDisposeScope();
            var ps = new[] { new Parameter(torch.zeros(2)), new Parameter(torch.zeros(3)) };
            using var collectives = new GroupStepCollectives(groups[0]);
            using (var reduction = collectives.BeginGradientReduction([[ps[0]], [ps[1]]], null, CancellationToken.None))
            {
                Assert.Contains("expected stage 0", Assert.Throws<InvalidOperationException>(() => reduction.Release(1)).Message);
                reduction.Release(0);
                Assert.Contains("Stage 1 of 2 was never released", Assert.Throws<InvalidOperationException>(reduction.Complete).Message);
                Assert.Throws<InvalidOperationException>(() => collectives.BeginGradientReduction([[ps[0]], [ps[1]]], null, CancellationToken.None));
            }

            // Disposed: the reducer takes the next step's reduction.
            using var next = collectives.BeginGradientReduction([[ps[0]], [ps[1]]], null, CancellationToken.None);
            next.Release(0);
            next.Release(1);
            next.Complete();
            Assert.Throws<ArgumentException>(() => new GradientLayout([[ps[0]], [ps[0]]], 16));
        }
        finally
        {
            await groups[0].DisposeAsync();
        }
    }

    [Fact]
    public async Task An_abandoned_reduction_stops_its_wire_instead_of_waiting_for_a_peer_that_never_sends()
    {
        // Rank 1 never takes part: rank 0's stage 0 waits on it. Disposing the reduction (the step
        // failed) must return promptly, long before the 60 s operation timeout, and fail the group.
        var groups = InMemoryCollectives.CreateGroups(2, options: GroupOptions);
        try
        {
            var outcome = RankThreads.Run(1, Deadline, _ =>
            {
                using var scope = torch.NewDisposeScope();
                var p = new Parameter(torch.zeros(4));
                p.grad = torch.ones(4);
                using var collectives = new GroupStepCollectives(groups[0]);
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var reduction = (GradientReducer.Reduction)collectives.BeginGradientReduction([[p]], null, CancellationToken.None);
                reduction.Release(0);
                Assert.False(reduction.Sent(0).IsCompleted);
                reduction.Dispose();
                return (clock.Elapsed, Faulted: reduction.Sent(0).IsFaulted || reduction.Sent(0).IsCanceled);
            }).Single().Value;

            Assert.True(outcome.Elapsed < TimeSpan.FromSeconds(20), $"dispose took {outcome.Elapsed}");
            Assert.True(outcome.Faulted);
        }
        finally
        {
            foreach (var group in groups)
            {
                await group.DisposeAsync();
            }
        }
    }

    [Theory]
    [InlineData(new[] { 1, 4, 4 }, new[] { 4, 7 }, new[] { 19 }, true)] // 4 of 20 rows used: they go as rows
    [InlineData(new[] { 0, 1, 2, 3, 4 }, new[] { 5, 6, 7, 8, 9 }, new[] { 10 }, false)] // 11 of 20: dense is cheaper
    public async Task A_lookup_table_sums_over_the_rows_any_rank_used_and_stays_zero_elsewhere(int[] rows0, int[] rows1, int[] rows2, bool asRows)
    {
        // Values are multiples of 1/8, so every order of summation gives the same bits and the
        // expected sums are exact.
        int[][] used = [rows0, rows1, rows2];
        const int Rows = 20, Width = 3;
        var groups = InMemoryCollectives.CreateGroups(3, options: GroupOptions);
        try
        {
            var outcomes = RankThreads.Run(3, Deadline, rank =>
            {
                using var scope = torch.NewDisposeScope();
                var table = new Parameter(torch.zeros(Rows, Width));
                var bias = new Parameter(torch.zeros(2));
                using var collectives = new GroupStepCollectives(groups[rank]);
                var results = new List<float[]>();
                for (int round = 0; round < 2; round++)
                {
                    var grad = new float[Rows * Width];
                    foreach (int row in used[rank])
                    {
                        for (int c = 0; c < Width; c++)
                        {
                            grad[(row * Width) + c] += Cell(rank, row, c, round);
                        }
                    }

                    if (table.grad is { } existing)
                    {
                        using (existing)
                        {
                            existing.copy_(torch.tensor(grad).reshape(Rows, Width));
                        }
                    }
                    else
                    {
                        table.grad = torch.tensor(grad).reshape(Rows, Width);
                    }

                    using var value = (rank + 1f).ToScalar();
                    bias.grad = torch.full(2, value);
                    using var reduction = collectives.BeginGradientReduction(
                        [[bias, table]], [new RowSparseGradient(table, [.. used[rank].Select(r => (long)r), .. used[rank].Select(r => (long)r)])], CancellationToken.None);
                    reduction.Release(0);
                    reduction.Complete();
                    results.Add(Floats(table.grad!));
                    Assert.Equal(new[] { 6f, 6f }, Floats(bias.grad!));
                }

                return (Results: results, collectives.Reducer.LastSparse);
            }).Select(o => o.Value).ToArray();

            var union = used.SelectMany(u => u).Distinct().Count();
            foreach (var (results, last) in outcomes)
            {
                Assert.Equal((union, asRows), last);
                for (int round = 0; round < 2; round++)
                {
                    var expected = new float[Rows * Width];
                    for (int rank = 0; rank < 3; rank++)
                    {
                        foreach (int row in used[rank])
                        {
                            for (int c = 0; c < Width; c++)
                            {
                                expected[(row * Width) + c] += Cell(rank, row, c, round);
                            }
                        }
                    }

                    Assert.Equal(expected, results[round]);
                }
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

    [Fact]
    public async Task Row_ids_outside_the_table_are_refused_before_anything_is_sent()
    {
        var groups = InMemoryCollectives.CreateGroups(1, options: GroupOptions);
        try
        {
            using var scope = torch.NewDisposeScope();
            var table = new Parameter(torch.zeros(4, 2));
            using var collectives = new GroupStepCollectives(groups[0]);
            var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
                collectives.BeginGradientReduction([[table]], [new RowSparseGradient(table, [1, 4])], CancellationToken.None));
            Assert.Contains("[0, 4)", error.Message);
        }
        finally
        {
            await groups[0].DisposeAsync();
        }
    }

    private static float Cell(int rank, int row, int column, int round) => ((rank * 7) + (row * 3) + column + round) % 11 / 8f;

    private static readonly long[][] Shapes = [[3, 4], [5], [2, 2], [7]];

    private static void SetGrads(Parameter[] ps, int rank, int round)
    {
        foreach (var p in ps)
        {
            int i = Array.FindIndex(Shapes, s => s.SequenceEqual(p.shape));
            using var values = torch.tensor(Values(rank, i, round)).reshape(p.shape);
            if (p.grad is { } grad)
            {
                using (grad)
                {
                    grad.copy_(values);
                }
            }
            else
            {
                p.grad = values.clone();
            }
        }
    }

    private static float[] Values(int rank, int index, int round) =>
        [.. Enumerable.Range(0, (int)Shapes[index].Aggregate(1L, (a, b) => a * b)).Select(j => (float)(Math.Sin((rank * 131) + (index * 7) + (round * 17) + j) / 3))];

    private static float[] Sum(int index, int round) => [.. Values(0, index, round).Zip(Values(1, index, round), (a, b) => a + b)];
}

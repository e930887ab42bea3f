using DistClip.Collectives;
using DistClip.Collectives.InMemory;
using DistClip.Config;
using DistClip.Model;
using DistClip.Training.Distributed;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;
using TorchSharp;
using Xunit.Abstractions;
using static DistClip.Training.Tests.Distributed.ClusterHarness;

namespace DistClip.Training.Tests.Distributed;

/// <summary>
/// A collective that fails on one rank must fail the step on every rank, promptly: by the group
/// breaking its links, long before the operation timeout (60 s here) could end the wait.
/// </summary>
public class FailureTests(ITestOutputHelper output)
{
    private const int World = 4;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    // The gradient all-reduce is far longer than the loss stage's three statistics.
    private const int GradientLength = 1000;

    [Fact]
    public void Cancelling_one_rank_inside_the_gradient_all_reduce_makes_every_rank_step_throw()
    {
        using var cancelRank0 = new CancellationTokenSource();
        using var rank0Started = new ManualResetEventSlim();
        bool startedIncomplete = false;
        var inner = InMemoryCollectives.CreateGroups(World, options: GroupOptions);
        var groups = inner.Select((g, r) => r switch
        {
            // Rank 0 cancels once its all-reduce is surely waiting: rank 1 has not joined it yet.
            0 => new InterceptingGroup(g)
            {
                AllReduceMinimumLength = GradientLength,
                AfterFirstAllReduceStarted = task =>
                {
                    startedIncomplete = !task.IsCompleted;
                    cancelRank0.Cancel();
                    rank0Started.Set();
                },
            },
            1 => new InterceptingGroup(g) { AllReduceMinimumLength = GradientLength, BeforeFirstAllReduce = () => rank0Started.Wait(Deadline) },
            _ => (ICollectiveGroup)g,
        }).ToArray();

        var outcomes = StepEveryRank(groups, rank => rank == 0 ? cancelRank0.Token : CancellationToken.None);

        Assert.True(startedIncomplete, "rank 0's all-reduce had already completed when it was cancelled");
        Assert.IsAssignableFrom<OperationCanceledException>(outcomes[0].Error);
        for (int r = 1; r < World; r++)
        {
            Assert.True(outcomes[r].Error is CollectiveException, $"rank {r}: expected a CollectiveException, got {Describe(outcomes[r].Error)}");
        }
    }

    [Fact]
    public void A_rank_whose_group_closes_during_the_feature_gather_fails_every_rank_step()
    {
        var inner = InMemoryCollectives.CreateGroups(World, options: GroupOptions);
        var groups = inner.Select((g, r) => r == 3
            ? new InterceptingGroup(g) { BeforeFirstAllGather = () => g.DisposeAsync().AsTask().GetAwaiter().GetResult() } // as a dying worker's links close
            : (ICollectiveGroup)g).ToArray();

        var outcomes = StepEveryRank(groups, _ => CancellationToken.None);

        Assert.IsType<ObjectDisposedException>(outcomes[3].Error);
        for (int r = 0; r < 3; r++)
        {
            Assert.True(outcomes[r].Error is CollectiveException, $"rank {r}: expected a CollectiveException, got {Describe(outcomes[r].Error)}");
        }
    }

    [Fact]
    public void A_rank_whose_group_closes_before_the_feature_gradients_reduce_scatter_fails_every_rank_step()
    {
        var inner = InMemoryCollectives.CreateGroups(World, options: GroupOptions);
        var groups = inner.Select((g, r) => r == 2
            ? new InterceptingGroup(g) { BeforeFirstReduceScatter = () => g.DisposeAsync().AsTask().GetAwaiter().GetResult() }
            : (ICollectiveGroup)g).ToArray();

        var outcomes = StepEveryRank(groups, _ => CancellationToken.None);

        Assert.IsType<ObjectDisposedException>(outcomes[2].Error);
        for (int r = 0; r < World; r++)
        {
            Assert.True(r == 2 || outcomes[r].Error is CollectiveException, $"rank {r}: expected a CollectiveException, got {Describe(outcomes[r].Error)}");
        }
    }

    [Fact]
    public void A_rank_whose_group_closes_while_texts_travel_the_ring_fails_every_rank_sigmoid_step()
    {
        var inner = InMemoryCollectives.CreateGroups(World, options: GroupOptions);
        var groups = inner.Select((g, r) => r == 1
            ? new InterceptingGroup(g) { BeforeFirstShift = () => g.DisposeAsync().AsTask().GetAwaiter().GetResult() }
            : (ICollectiveGroup)g).ToArray();

        var outcomes = StepEveryRank(groups, _ => CancellationToken.None, new StepSettings { Loss = LossKind.Siglip });

        Assert.IsType<ObjectDisposedException>(outcomes[1].Error);
        for (int r = 0; r < World; r++)
        {
            Assert.True(r == 1 || outcomes[r].Error is CollectiveException, $"rank {r}: expected a CollectiveException, got {Describe(outcomes[r].Error)}");
        }
    }

    /// <summary>One training step on every rank; all must have thrown within <see cref="Deadline"/>.</summary>
    private RankOutcome<StepMetrics>[] StepEveryRank(ICollectiveGroup[] groups, Func<int, CancellationToken> token, StepSettings? step = null)
    {
        var models = Enumerable.Range(0, World).Select(_ => NewModel(Seed, ConfigFor(step))).ToArray();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var outcomes = RankThreads.Run(World, Deadline, rank =>
            {
                using var collectives = new GroupStepCollectives(groups[rank]);
                using var trainer = new ClipTrainer(models[rank], new OptimizerSettings(), 1, torch.CPU, collectives, step);
                return trainer.Step(LocalBatches(World, rank, 1)[0], 0, token(rank));
            });
            output.WriteLine($"all {World} ranks returned after {clock.Elapsed.TotalSeconds:F2} s");
            foreach (var outcome in outcomes)
            {
                output.WriteLine($"rank {outcome.Rank}: {Describe(outcome.Error)}");
                Assert.True(outcome.Error is not null, $"rank {outcome.Rank}'s step completed; expected it to throw");
            }

            return outcomes;
        }
        finally
        {
            foreach (var group in groups)
            {
                group.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            foreach (ClipModel model in models)
            {
                model.Dispose();
            }
        }
    }

    private static string Describe(Exception? e) => e is null ? "no exception" : $"{e.GetType().Name}: {e.Message}";
}

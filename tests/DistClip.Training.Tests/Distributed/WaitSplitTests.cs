using DistClip.Collectives.InMemory;
using DistClip.Config;
using DistClip.Training.Distributed;
using DistClip.Training.Steps;
using TorchSharp;
using static DistClip.Training.Tests.Distributed.ClusterHarness;

namespace DistClip.Training.Tests.Distributed;

/// <summary>
/// A step's collective waits split into what communication added to the step and what a rank waited
/// for slower ranks: every rank's waits travel in the next step's first collective.
/// </summary>
public class WaitSplitTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public void The_rank_that_waited_least_in_each_phase_sets_the_exposed_communication_and_the_rest_is_peer_wait()
    {
        CollectiveWaits?[] all = [new(5, 0.300, 0.002), new(5, 0.004, 0.050), new(5, 0.010, 0.001)];

        var splits = Enumerable.Range(0, 3).Select(r => WaitSplit.From(all, r)!).ToArray();

        // The least all_gather wait (rank 1's) plus the least all_reduce wait (rank 2's).
        Assert.All(splits, s => Assert.Equal(0.005, s.ExposedCommunication, 12));
        Assert.All(splits, s => Assert.Equal(5, s.Step));
        Assert.Equal(0.297, splits[0].PeerWait, 12);
        Assert.Equal(0.049, splits[1].PeerWait, 12);
        Assert.Equal(0.006, splits[2].PeerWait, 12);
    }

    [Fact]
    public void There_is_no_split_when_a_rank_has_no_waits_or_the_ranks_report_different_steps()
    {
        Assert.Null(WaitSplit.From([new CollectiveWaits(5, 0.1, 0.1), null], 0));
        Assert.Null(WaitSplit.From([new CollectiveWaits(5, 0.1, 0.1), new CollectiveWaits(4, 0.1, 0.1)], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => WaitSplit.From([new CollectiveWaits(5, 0.1, 0.1)], 1));
    }

    [Fact]
    public async Task A_rank_held_up_before_the_loss_shows_as_its_peers_wait_in_the_next_step_not_as_communication()
    {
        const int Steps = 5;
        const long HeldStep = 3;
        var hold = TimeSpan.FromMilliseconds(400);
        var models = Enumerable.Range(0, 2).Select(r => NewModel(Seed + r)).ToArray();
        var groups = InMemoryCollectives.CreateGroups(2, options: GroupOptions);
        var batches = Enumerable.Range(0, 2).Select(r => LocalBatches(2, r, Steps)).ToArray();
        try
        {
            var outcomes = RankThreads.Run(2, Deadline, rank =>
            {
                using var collectives = new GroupStepCollectives(groups[rank]);
                collectives.BroadcastParameters(models[rank], root: 0, CancellationToken.None);
                // Rank 1's forward of step 3 takes 400 ms longer (an injected load, not a wait for an event).
                var hooks = new HoldAt(rank == 1 ? HeldStep : -1, hold);
                using var trainer = new ClipTrainer(models[rank], new OptimizerSettings(), Steps, torch.CPU, collectives, hooks: hooks);
                return batches[rank].Take(Steps).Select(b => trainer.Step(b, 0, CancellationToken.None)).ToList();
            });
            var metrics = outcomes.Select(o => o.Value).ToArray();

            // The first step has no step before it to report.
            Assert.All(metrics, m => Assert.Null(m[0].PreviousWaits));
            for (int s = 1; s < Steps; s++)
            {
                var splits = metrics.Select(m => m[s].PreviousWaits ?? throw new Xunit.Sdk.XunitException($"step {s + 1} reported no split")).ToArray();
                Assert.All(splits, w => Assert.Equal(s, w.Step));
                // What the communication added is one figure for the step, the same bits on every rank.
                Assert.Equal(splits[0].ExposedCommunication, splits[1].ExposedCommunication);
                for (int rank = 0; rank < 2; rank++)
                {
                    // The split only divides the rank's own waits (as they travelled, in float32).
                    var times = metrics[rank][s - 1].Times;
                    double waited = (double)(float)times.AllGather + (float)times.AllReduce;
                    Assert.Equal(waited, splits[rank].ExposedCommunication + splits[rank].PeerWait, 9);
                    Assert.True(splits[rank].PeerWait >= 0);
                }
            }

            // Step 3, reported by step 4: rank 0 waited for rank 1's late forward; rank 1, the last to arrive, did not.
            var held = metrics.Select(m => m[(int)HeldStep].PreviousWaits!).ToArray();
            Assert.True(held[0].PeerWait >= 0.25, $"rank 0 waited {held[0].PeerWait:F3} s for a peer held up 0.4 s");
            Assert.True(held[0].PeerWait > held[1].PeerWait + 0.2, $"peer waits {held[0].PeerWait:F3} s and {held[1].PeerWait:F3} s");
            Assert.True(held[0].ExposedCommunication < held[0].PeerWait, $"exposed communication {held[0].ExposedCommunication:F3} s");
        }
        finally
        {
            await DisposeAllAsync(groups, models);
        }
    }

    [Fact]
    public void One_process_reports_no_split()
    {
        using var model = NewModel(Seed);
        using var trainer = new ClipTrainer(model, new OptimizerSettings(), 2, torch.CPU);
        var metrics = LocalBatches(1, 0, 2).Take(2).Select(b => trainer.Step(b, 0, CancellationToken.None)).ToList();

        Assert.All(metrics, m => Assert.Null(m.PreviousWaits));
    }

    [Fact]
    public void A_peers_header_out_of_range_is_refused_for_its_rows_and_ignored_for_its_waits()
    {
        float nan = float.NaN;
        // rows, width, previous step, all_gather wait, all_reduce wait
        float[][] badWaits = [[4, 64, 2.5f, 0.1f, 0.1f], [4, 64, -1, 0.1f, 0.1f], [4, 64, 2, nan, 0.1f], [4, 64, 2, 0.1f, -0.5f], [4, 64, 2, 1e9f, 0.1f], [4, 64, nan, nan, nan]];
        foreach (var header in badWaits)
        {
            var (headers, error) = Exchange(header);
            Assert.Null(error);
            Assert.Equal([4, 4], headers!.Rows);
            Assert.Equal(new CollectiveWaits(2, 0.25f, 0.125f), headers.PreviousWaits[0]);
            Assert.Null(headers.PreviousWaits[1]);
        }

        float[][] badRows = [[-3, 64, 2, 0.1f, 0.1f], [2.5f, 64, 2, 0.1f, 0.1f], [nan, 64, 2, 0.1f, 0.1f], [1 << 25, 64, 2, 0.1f, 0.1f]];
        foreach (var header in badRows)
        {
            var (_, error) = Exchange(header);
            var refused = Assert.IsType<InvalidDataException>(error);
            Assert.Contains("Rank 1 announced", refused.Message, StringComparison.Ordinal);
        }

        // The same floats from a well-behaved peer are taken as they are.
        var (good, none) = Exchange(GroupStepCollectives.Header(4, 64, new CollectiveWaits(2, 0.5, 0.0625)));
        Assert.Null(none);
        Assert.Equal(new CollectiveWaits(2, 0.5, 0.0625), good!.PreviousWaits[1]);
    }

    /// <summary>Rank 0 gathers step headers (4 rows of width 64, its own waits of step 2) while rank 1 sends <paramref name="peer"/> as they are.</summary>
    private static (StepHeaders? Headers, Exception? Error) Exchange(float[] peer)
    {
        var groups = InMemoryCollectives.CreateGroups(2, options: GroupOptions);
        try
        {
            var outcomes = RankThreads.Run(2, Deadline, rank =>
            {
                if (rank == 1)
                {
                    groups[1].AllGatherAsync(peer, new float[2 * GroupStepCollectives.HeaderFloats], CancellationToken.None).GetAwaiter().GetResult();
                    return null;
                }

                using var collectives = new GroupStepCollectives(groups[0]);
                return collectives.GatherRowCounts(4, 64, new CollectiveWaits(2, 0.25, 0.125), CancellationToken.None);
            });
            Assert.Null(outcomes[1].Error);
            return (outcomes[0].Result, outcomes[0].Error);
        }
        finally
        {
            foreach (var group in groups)
            {
                group.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
    }

    private sealed class HoldAt(long step, TimeSpan hold) : IStepHooks
    {
        public void At(TrainingPhase point, long current)
        {
            if (point == TrainingPhase.Forward && current == step)
            {
                Thread.Sleep(hold);
            }
        }

        public bool PoisonGradients(long current) => false;
    }
}

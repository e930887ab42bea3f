using DistClip.Control.V1;
using DistClip.Coordinator.Runs;
using DistClip.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using DistClip.Config;

namespace DistClip.Coordinator.Tests;

/// <summary>The run's membership and ending, in process: no gRPC, no worker processes, a fake clock.</summary>
public sealed class RunCoordinatorTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task The_summary_lists_the_peak_rss_each_rank_reported_by_rank_whatever_order_they_finish_in()
    {
        using var run = new RunCoordinator(Settings(worldSize: 3), NullLogger.Instance, new FakeTimeProvider());
        // Joined out of rank order; each asks for its rank.
        var assignments = await Task.WhenAll(Join(run, "w2", 2), Join(run, "w0", 0), Join(run, "w1", 1)).WaitAsync(Deadline);
        long generation = assignments[0].Generation;

        run.Finish(Finished(generation, rank: 2, peak: 300_000_000));
        run.Finish(Finished(generation, rank: 0, peak: 100_000_000));
        run.Finish(Finished(generation, rank: 1, peak: 0)); // a worker that could not read its peak
        var outcome = await run.Completion.WaitAsync(Deadline);

        Assert.True(outcome.Succeeded, outcome.Error);
        Assert.Equal([100_000_000L, 0L, 300_000_000L], outcome.Summary!.PeakRssBytes!);
        Assert.Equal(300_000_000L, outcome.Summary.PeakRssBytesMax);
    }

    private static RunSettings Settings(int worldSize) => new()
    {
        RunId = "test",
        Secret = "secret",
        Config = new RunConfig(),
        WorldSize = worldSize,
        RunDirectory = "unused",
        CheckpointRoot = "unused",
    };

    private static Task<Assignment> Join(RunCoordinator run, string workerId, int preferredRank) =>
        run.JoinAsync(new JoinRequest
        {
            WorkerId = workerId,
            Host = "localhost",
            Pid = 1000 + preferredRank,
            CollectiveEndpoint = $"http://127.0.0.1:{40000 + preferredRank}/",
            PreferredRank = preferredRank,
        }, CancellationToken.None);

    private static WorkerFinished Finished(long generation, int rank, long peak) => new()
    {
        Generation = generation,
        Rank = rank,
        ParametersSha256 = "same-on-every-rank",
        PeakRssBytes = peak,
        SummaryJson = rank == 0 ? new RunSummary { Model = "clip-micro", Dataset = "synthetic-train-64" }.ToJson() : "",
    };
}

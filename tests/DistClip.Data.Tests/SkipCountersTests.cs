namespace DistClip.Data.Tests;

public sealed class SkipCountersTests
{
    [Fact]
    public void Counts_each_reason_separately_and_in_total()
    {
        var skips = new SkipCounters();
        skips.Record(SkipReason.UndecodableImage, "a");
        skips.Record(SkipReason.UndecodableImage, "b");
        skips.Record(SkipReason.EmptyCaption, "c");

        Assert.Equal(2, skips.Get(SkipReason.UndecodableImage));
        Assert.Equal(1, skips.Get(SkipReason.EmptyCaption));
        Assert.Equal(0, skips.Get(SkipReason.TruncatedEntry));
        Assert.Equal(3, skips.Total);
        IReadOnlyDictionary<SkipReason, long> snapshot = skips.Snapshot();
        Assert.Equal(Enum.GetValues<SkipReason>().Length, snapshot.Count);
        Assert.Equal(2, snapshot[SkipReason.UndecodableImage]);
    }

    [Fact]
    public void Concurrent_records_are_all_counted()
    {
        var skips = new SkipCounters(new ListLogger(), new FakeClock());
        Parallel.For(0, 20_000, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => skips.Record((SkipReason)(i % 2), "x"));

        Assert.Equal(10_000, skips.Get((SkipReason)0));
        Assert.Equal(10_000, skips.Get((SkipReason)1));
    }

    [Fact]
    public void Logs_first_skip_then_at_most_once_per_interval_per_reason_with_running_count()
    {
        var logger = new ListLogger();
        var clock = new FakeClock();
        var skips = new SkipCounters(logger, clock);

        skips.Record(SkipReason.UndecodableImage, "shard-0:a");
        skips.Record(SkipReason.UndecodableImage, "shard-0:b");
        skips.Record(SkipReason.MissingCaption, "shard-0:c");
        clock.Advance(SkipCounters.LogInterval - TimeSpan.FromMilliseconds(1));
        skips.Record(SkipReason.UndecodableImage, "shard-0:d");
        Assert.Equal(2, logger.Lines.Count);

        clock.Advance(TimeSpan.FromMilliseconds(1));
        skips.Record(SkipReason.UndecodableImage, "shard-0:e");

        Assert.Equal(3, logger.Lines.Count);
        Assert.Contains("shard-0:a", logger.Lines[0]);
        Assert.Contains("UndecodableImage", logger.Lines[0]);
        Assert.Contains("MissingCaption", logger.Lines[1]);
        Assert.Contains("shard-0:e", logger.Lines[2]);
        Assert.Contains("(4 skipped", logger.Lines[2]);
    }
}

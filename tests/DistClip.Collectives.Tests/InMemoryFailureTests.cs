using DistClip.Collectives.InMemory;
using DistClip.Collectives.Ring;
using DistClip.Collectives.Transport;
using Microsoft.Extensions.Time.Testing;

namespace DistClip.Collectives.Tests;

/// <summary>Failure is part of the contract: stale frames, silent peers, cancellation, faulted groups.</summary>
public sealed class InMemoryFailureTests
{
    [Fact]
    public async Task A_frame_from_a_stale_generation_is_rejected_and_not_applied()
    {
        var transports = InMemoryCollectives.CreateTransports(2);
        var groups = transports.Select(t => new RingCollectiveGroup(t, generation: 5, new CollectiveOptions())).ToArray();
        var original = new float[] { 1, 2, 3, 4 };
        var data = (float[])original.Clone();
        // Rank 1 first receives block 0 (2 floats) of all-reduce #1; a generation-4 frame stands in for it.
        var stale = new RingFrame(new FrameHeader(4, 1, CollectiveOperation.AllReduce, 0, 8), RingFrame.Rent(8), 8);
        await transports[1].InjectAsync(stale, CancellationToken.None);

        var error = await Assert.ThrowsAsync<CollectiveMismatchException>(
            () => groups[1].AllReduceSumAsync(data, CancellationToken.None));

        Assert.Equal("generation", error.Field);
        Assert.Equal("5", error.Expected);
        Assert.Equal("4", error.Actual);
        Assert.Equal(original, data);
        // The faulted rank broke its links, so its neighbour fails at once, naming it.
        var neighbour = await Assert.ThrowsAsync<PeerFailedException>(
            () => groups[0].AllReduceSumAsync(new float[4], CancellationToken.None));
        Assert.Equal(1, neighbour.Peer!.Rank);
        Assert.Contains("AllReduce #1", neighbour.Message);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task A_rank_that_never_joins_makes_the_others_time_out_naming_who_they_wait_on()
    {
        var clock = new FakeTimeProvider();
        var timeout = TimeSpan.FromSeconds(5);
        var groups = InMemoryCollectives.CreateGroups(3, options: new() { OperationTimeout = timeout }, timeProvider: clock);

        var pending = groups.Take(2).Select(g => g.AllReduceSumAsync(new float[10], CancellationToken.None)).ToArray();
        clock.Advance(timeout - TimeSpan.FromMilliseconds(1));
        Assert.DoesNotContain(pending, t => t.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(1));

        var rank0 = await Assert.ThrowsAsync<CollectiveTimeoutException>(() => pending[0]);
        Assert.Equal(2, rank0.Peer!.Rank);
        Assert.Contains("AllReduce #1", rank0.Message);
        var rank1 = await Assert.ThrowsAnyAsync<CollectiveException>(() => pending[1]);
        Assert.True(rank1 is CollectiveTimeoutException or PeerFailedException, $"rank 1 failed with {rank1.GetType().Name}: {rank1.Message}");
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task Cancelling_one_rank_aborts_it_and_through_the_broken_link_its_neighbour()
    {
        var groups = InMemoryCollectives.CreateGroups(3);
        using var cancel = new CancellationTokenSource();
        var rank0 = groups[0].AllReduceSumAsync(new float[10], cancel.Token);
        var rank1 = groups[1].AllReduceSumAsync(new float[10], CancellationToken.None);

        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rank0);
        var neighbour = await Assert.ThrowsAsync<PeerFailedException>(() => rank1);
        Assert.Equal(0, neighbour.Peer!.Rank);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task A_faulted_group_refuses_later_operations()
    {
        var groups = InMemoryCollectives.CreateGroups(2);
        using var cancel = new CancellationTokenSource();
        var first = groups[0].BarrierAsync(cancel.Token);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);

        var later = await Assert.ThrowsAsync<CollectiveException>(() => groups[0].BarrierAsync(CancellationToken.None));
        Assert.Contains("faulted", later.Message);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task Disposing_a_group_fails_its_pending_operation_and_later_calls()
    {
        var groups = InMemoryCollectives.CreateGroups(2);
        var pending = groups[0].BarrierAsync(CancellationToken.None);

        await groups[0].DisposeAsync();

        var error = await Assert.ThrowsAsync<CollectiveException>(() => pending);
        Assert.Contains("disposed", error.Message);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => groups[0].BarrierAsync(CancellationToken.None));
        await groups[1].DisposeAsync();
    }

    [Fact]
    public async Task Mismatched_sizes_across_ranks_are_rejected_not_applied()
    {
        var groups = InMemoryCollectives.CreateGroups(2);
        var small = new float[] { 1, 1 };
        var large = new float[] { 1, 1, 1, 1 };

        var results = await Task.WhenAll(
            Capture(groups[0].AllReduceSumAsync(small, CancellationToken.None)),
            Capture(groups[1].AllReduceSumAsync(large, CancellationToken.None)));

        Assert.Contains(results, e => e is CollectiveMismatchException { Field: "length" });
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Theory]
    [InlineData(0, 1024)]
    [InlineData(-1, 1024)]
    [InlineData(5, 6)]
    [InlineData(5, 0)]
    public void Invalid_options_are_refused_by_name(int timeoutSeconds, int chunkBytes)
    {
        var options = new CollectiveOptions { OperationTimeout = TimeSpan.FromSeconds(timeoutSeconds), ChunkBytes = chunkBytes };
        var error = Assert.Throws<ArgumentException>(options.Validate);
        Assert.True(error.ParamName is nameof(CollectiveOptions.OperationTimeout) or nameof(CollectiveOptions.ChunkBytes));
    }

    private static async Task<Exception?> Capture(Task task)
    {
        try
        {
            await task;
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }
}

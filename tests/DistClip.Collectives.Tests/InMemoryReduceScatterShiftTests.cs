using DistClip.Collectives.InMemory;
using Microsoft.Extensions.Time.Testing;

namespace DistClip.Collectives.Tests;

/// <summary>Reduce-scatter and ring shift over the in-memory transport: results, sizes, failures.</summary>
public sealed class InMemoryReduceScatterShiftTests
{
    // 16 floats a frame: the 1000-element blocks below travel as 63 frames, pipelined across steps.
    private static readonly CollectiveOptions SmallChunks = new() { ChunkBytes = 64 };

    public static TheoryData<int[]> ReduceScatterCounts() => new()
    {
        new[] { 37 },
        new[] { 0 },
        new[] { 0, 1000 },
        new[] { 1, 0 },
        new[] { 1000, 0, 1 },
        new[] { 1, 37, 0, 1000 },
        new[] { 37, 0, 1000, 1, 0 },
        new[] { 0, 0, 0, 0, 0 },
    };

    [Theory]
    [MemberData(nameof(ReduceScatterCounts))]
    public async Task ReduceScatter_leaves_each_rank_the_sum_of_its_own_block_with_the_same_bits_every_run(int[] counts)
    {
        int n = counts.Length;
        var groups = InMemoryCollectives.CreateGroups(n, options: SmallChunks);
        var inputs = Enumerable.Range(0, n).Select(r => TestData.Random(counts.Sum(), 100 * n + r)).ToArray();
        var offsets = counts.Select((_, r) => counts.Take(r).Sum()).ToArray();

        string[]? firstRun = null;
        for (int run = 0; run < 3; run++)
        {
            var data = inputs.Select(x => (float[])x.Clone()).ToArray();

            await Task.WhenAll(groups.Select((g, r) => g.ReduceScatterSumAsync(data[r], counts, CancellationToken.None)));

            var owned = data.Select((d, r) => d.AsSpan(offsets[r], counts[r]).ToArray()).ToArray();
            for (int r = 0; r < n; r++)
            {
                TestData.AssertClose(inputs.Select(x => x.AsSpan(offsets[r], counts[r]).ToArray()).ToArray(), owned[r]);
            }

            var hashes = owned.Select(o => TestData.Sha256(o)).ToArray();
            firstRun ??= hashes;
            Assert.True(firstRun.SequenceEqual(hashes), $"run {run} differs from run 0: [{string.Join(", ", hashes)}] vs [{string.Join(", ", firstRun)}]");
        }

        await InMemoryRingTests.DisposeAll(groups);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task Shift_with_a_different_length_per_rank_moves_each_ranks_data_one_rank_right(int n)
    {
        var groups = InMemoryCollectives.CreateGroups(n, options: SmallChunks);
        // Rank r sends 17r + 1 elements: one frame for rank 0, several for the others.
        var sends = Enumerable.Range(0, n).Select(r => TestData.Random(17 * r + 1, r)).ToArray();
        var receives = Enumerable.Range(0, n).Select(r => new float[sends[Left(r, n)].Length]).ToArray();

        await Task.WhenAll(groups.Select((g, r) => g.ShiftAsync(sends[r], receives[r], CancellationToken.None)));

        for (int r = 0; r < n; r++)
        {
            Assert.Equal(sends[Left(r, n)], receives[r]);
        }

        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task Shift_of_empty_blocks_delivers_empty_blocks_and_the_rest_intact()
    {
        var groups = InMemoryCollectives.CreateGroups(3, options: SmallChunks);
        var sends = new[] { TestData.Random(0, 0), TestData.Random(40, 1), TestData.Random(0, 2) };
        var receives = new[] { Array.Empty<float>(), Array.Empty<float>(), new float[40] };

        await Task.WhenAll(groups.Select((g, r) => g.ShiftAsync(sends[r], receives[r], CancellationToken.None)));

        Assert.Equal(sends[1], receives[2]);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task Two_shifts_in_a_row_carry_each_ranks_data_two_ranks_right(int n)
    {
        var groups = InMemoryCollectives.CreateGroups(n, options: SmallChunks);
        var sends = Enumerable.Range(0, n).Select(r => TestData.Random(10 * r + 3, r)).ToArray();
        var once = Enumerable.Range(0, n).Select(r => new float[sends[Left(r, n)].Length]).ToArray();
        var twice = Enumerable.Range(0, n).Select(r => new float[once[Left(r, n)].Length]).ToArray();

        await Task.WhenAll(groups.Select((g, r) => g.ShiftAsync(sends[r], once[r], CancellationToken.None)));
        await Task.WhenAll(groups.Select((g, r) => g.ShiftAsync(once[r], twice[r], CancellationToken.None)));

        for (int r = 0; r < n; r++)
        {
            Assert.Equal(sends[Left(Left(r, n), n)], twice[r]);
        }

        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task Bad_arguments_are_refused_by_name_before_anything_is_sent()
    {
        var groups = InMemoryCollectives.CreateGroups(2);
        var data = new float[5];

        await Assert.ThrowsAsync<ArgumentNullException>("counts", () => groups[0].ReduceScatterSumAsync(data, null!, CancellationToken.None));
        var entries = await Assert.ThrowsAsync<ArgumentException>("counts", () => groups[0].ReduceScatterSumAsync(data, [5], CancellationToken.None));
        Assert.Contains("1 entries; the world size is 2", entries.Message);
        var negative = await Assert.ThrowsAsync<ArgumentOutOfRangeException>("counts", () => groups[0].ReduceScatterSumAsync(data, [6, -1], CancellationToken.None));
        Assert.Contains("counts[1] is negative", negative.Message);
        var length = await Assert.ThrowsAsync<ArgumentException>("data", () => groups[0].ReduceScatterSumAsync(data, [2, 2], CancellationToken.None));
        Assert.Contains("data has 5 elements; the counts add up to 4", length.Message);

        var single = InMemoryCollectives.CreateGroups(1)[0];
        var own = await Assert.ThrowsAsync<ArgumentException>("receive", () => single.ShiftAsync(new float[3], new float[4], CancellationToken.None));
        Assert.Contains("receive has 4 elements", own.Message);

        // Nothing was started, so the groups are not faulted: the next well-formed calls succeed.
        await Task.WhenAll(groups.Select(g => g.ReduceScatterSumAsync(new float[5], [2, 3], CancellationToken.None)));
        var copy = new float[3];
        await single.ShiftAsync(new float[] { 1, 2, 3 }, copy, CancellationToken.None);
        Assert.Equal([1f, 2f, 3f], copy);
        await InMemoryRingTests.DisposeAll(groups.Append(single));
    }

    [Theory]
    [InlineData(3, 7)]   // both in the first frame
    [InlineData(40, 32)] // more than expected, in whole frames: a length check per frame alone would pass
    [InlineData(32, 40)]
    [InlineData(0, 1)]
    [InlineData(1, 0)]
    public async Task A_shift_whose_receive_length_differs_from_the_left_neighbours_send_fails_naming_both_sizes(int sent, int expected)
    {
        // A clock that never moves: any failure here comes from the check, not from a timeout.
        var groups = InMemoryCollectives.CreateGroups(2, options: SmallChunks, timeProvider: new FakeTimeProvider());
        var receive = Enumerable.Repeat(float.NaN, expected).ToArray();

        var rank0 = Capture(groups[0].ShiftAsync(TestData.Random(sent, 0), new float[2], CancellationToken.None));
        var error = await Assert.ThrowsAsync<CollectiveMismatchException>(
            () => groups[1].ShiftAsync(TestData.Random(2, 1), receive, CancellationToken.None));

        Assert.Equal("size", error.Field);
        Assert.Equal(expected.ToString(), error.Expected);
        Assert.Equal(sent.ToString(), error.Actual);
        Assert.Contains($"expects {expected} elements from", error.Message);
        Assert.Contains($"which sends {sent}", error.Message);
        Assert.All(receive, x => Assert.True(float.IsNaN(x), "the mismatched block was applied"));
        // The sender either finished before the receiver refused, or saw the broken link; it never hangs.
        var senderOutcome = await rank0;
        Assert.True(senderOutcome is null or PeerFailedException, $"rank 0 failed with {senderOutcome}");
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task Cancelling_one_rank_mid_reduce_scatter_fails_its_neighbour_through_the_broken_link()
    {
        var groups = InMemoryCollectives.CreateGroups(3, options: SmallChunks, timeProvider: new FakeTimeProvider());
        int[] counts = [100, 100, 100];
        using var cancel = new CancellationTokenSource();
        // Rank 2 never joins, so rank 1 waits in step 1 on what rank 0 would forward from it.
        var rank0 = groups[0].ReduceScatterSumAsync(new float[300], counts, cancel.Token);
        var rank1 = groups[1].ReduceScatterSumAsync(new float[300], counts, CancellationToken.None);
        Assert.False(rank1.IsCompleted, "rank 1 finished without rank 2");

        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rank0);
        var neighbour = await Assert.ThrowsAsync<PeerFailedException>(() => rank1);
        Assert.Equal(0, neighbour.Peer!.Rank);
        Assert.Contains("ReduceScatter #1", neighbour.Message);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task Cancelling_a_shift_blocked_on_a_full_link_fails_both_neighbours_at_once()
    {
        var groups = InMemoryCollectives.CreateGroups(3, options: SmallChunks, timeProvider: new FakeTimeProvider());
        using var cancel = new CancellationTokenSource();
        // 100 floats are 1 + 7 frames: more than the link buffers, so rank 0 is still sending when cancelled.
        var rank0 = groups[0].ShiftAsync(new float[100], new float[1], cancel.Token);
        Assert.False(rank0.IsCompleted, "rank 0 finished with nobody receiving");

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rank0);

        // Rank 1 gets the frames that made it across, then the broken link; rank 2 cannot send to rank 0.
        var right = await Assert.ThrowsAsync<PeerFailedException>(
            () => groups[1].ShiftAsync(new float[1], new float[100], CancellationToken.None));
        Assert.Equal(0, right.Peer!.Rank);
        var left = await Assert.ThrowsAsync<PeerFailedException>(
            () => groups[2].ShiftAsync(new float[1], new float[1], CancellationToken.None));
        Assert.Equal(0, left.Peer!.Rank);
        Assert.Contains("Shift #1", left.Message);
        await InMemoryRingTests.DisposeAll(groups);
    }

    private static int Left(int rank, int n) => (rank - 1 + n) % n;

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

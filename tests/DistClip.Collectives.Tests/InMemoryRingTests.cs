using DistClip.Collectives.InMemory;

namespace DistClip.Collectives.Tests;

/// <summary>The ring algorithms over the in-memory transport, N = 1 … 8.</summary>
public sealed class InMemoryRingTests
{
    private static readonly CollectiveOptions SmallChunks = new() { ChunkBytes = 64 };

    public static TheoryData<int, int> WorldsAndSizes()
    {
        var data = new TheoryData<int, int>();
        foreach (int n in new[] { 1, 2, 3, 4, 5, 6, 7, 8 })
        {
            foreach (int count in new[] { 0, 1, 7, 1000, 100_003 })
            {
                data.Add(n, count);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(WorldsAndSizes))]
    public async Task AllReduce_matches_float64_reference_and_is_bit_identical_on_every_rank(int n, int count)
    {
        var groups = InMemoryCollectives.CreateGroups(n, options: new() { ChunkBytes = 4096 });
        var inputs = Enumerable.Range(0, n).Select(r => TestData.Random(count, 1000 * n + r)).ToArray();
        var results = inputs.Select(x => (float[])x.Clone()).ToArray();

        await Task.WhenAll(groups.Select((g, r) => g.AllReduceSumAsync(results[r], CancellationToken.None)));

        TestData.AssertClose(inputs, results[0]);
        var hashes = results.Select(x => TestData.Sha256(x)).Distinct().ToArray();
        Assert.True(hashes.Length == 1, $"ranks disagree: {string.Join(", ", hashes)}");
        await DisposeAll(groups);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    public async Task AllReduce_of_several_buffers_equals_the_sum_of_each(int n)
    {
        var groups = InMemoryCollectives.CreateGroups(n, options: SmallChunks);
        int[] sizes = [5, 0, 33, 1];
        var inputs = Enumerable.Range(0, n).Select(r => sizes.Select((s, i) => TestData.Random(s, 10 * r + i)).ToArray()).ToArray();
        var results = inputs.Select(bufs => bufs.Select(b => (float[])b.Clone()).ToArray()).ToArray();

        await Task.WhenAll(groups.Select((g, r) =>
            g.AllReduceSumAsync(results[r].Select(b => new Memory<float>(b)).ToArray(), CancellationToken.None)));

        for (int i = 0; i < sizes.Length; i++)
        {
            TestData.AssertClose(inputs.Select(bufs => bufs[i]).ToArray(), results[0][i]);
            Assert.Single(results.Select(bufs => TestData.Sha256(bufs[i])).Distinct());
        }

        await DisposeAll(groups);
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(2, 1000)]
    [InlineData(5, 17)]
    [InlineData(8, 256)]
    public async Task AllGather_concatenates_in_rank_order(int n, int count)
    {
        var groups = InMemoryCollectives.CreateGroups(n, options: SmallChunks);
        var inputs = Enumerable.Range(0, n).Select(r => TestData.Random(count, r)).ToArray();
        var outputs = Enumerable.Range(0, n).Select(_ => new float[n * count]).ToArray();

        await Task.WhenAll(groups.Select((g, r) => g.AllGatherAsync(inputs[r], outputs[r], CancellationToken.None)));

        var expected = inputs.SelectMany(x => x).ToArray();
        foreach (var output in outputs)
        {
            Assert.Equal(expected, output);
        }

        await DisposeAll(groups);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(7)]
    public async Task AllGather_with_unequal_counts_places_each_rank_at_its_offset(int n)
    {
        var groups = InMemoryCollectives.CreateGroups(n, options: SmallChunks);
        var counts = Enumerable.Range(0, n).Select(r => (r * 37) % 50).ToArray(); // rank 0 sends nothing
        var inputs = counts.Select((c, r) => TestData.Random(c, r)).ToArray();
        var outputs = Enumerable.Range(0, n).Select(_ => new float[counts.Sum()]).ToArray();

        var gathered = await Task.WhenAll(groups.Select((g, r) => g.AllGatherCountsAsync(counts[r], CancellationToken.None)));
        Assert.All(gathered, c => Assert.Equal(counts, c));
        await Task.WhenAll(groups.Select((g, r) => g.AllGatherAsync(inputs[r], outputs[r], counts, CancellationToken.None)));

        Assert.All(outputs, o => Assert.Equal(inputs.SelectMany(x => x).ToArray(), o));
        await DisposeAll(groups);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(6)]
    public async Task Broadcast_from_every_root_copies_the_roots_data(int n)
    {
        var groups = InMemoryCollectives.CreateGroups(n, options: SmallChunks);
        for (int root = 0; root < n; root++)
        {
            var data = Enumerable.Range(0, n).Select(r => TestData.Random(1001, 100 * root + r)).ToArray();
            var expected = (float[])data[root].Clone();

            await Task.WhenAll(groups.Select((g, r) => g.BroadcastAsync(data[r], root, CancellationToken.None)));

            Assert.All(data, d => Assert.Equal(expected, d));
        }

        await DisposeAll(groups);
    }

    [Fact]
    public async Task Barrier_completes_on_no_rank_until_every_rank_has_entered()
    {
        var groups = InMemoryCollectives.CreateGroups(4);
        var early = groups.Take(3).Select(g => g.BarrierAsync(CancellationToken.None)).ToArray();

        Assert.DoesNotContain(early, t => t.IsCompleted);
        await Task.WhenAll(early.Append(groups[3].BarrierAsync(CancellationToken.None)));
        await DisposeAll(groups);
    }

    [Fact]
    public async Task Many_operations_in_a_row_keep_sequence_numbers_in_step()
    {
        var groups = InMemoryCollectives.CreateGroups(3, options: SmallChunks);
        for (int i = 0; i < 20; i++)
        {
            var data = Enumerable.Range(0, 3).Select(r => new float[] { r + i }).ToArray();
            await Task.WhenAll(groups.Select((g, r) => g.AllReduceSumAsync(data[r], CancellationToken.None)));
            Assert.All(data, d => Assert.Equal(3 + 3 * i, d[0]));
            await Task.WhenAll(groups.Select(g => g.BarrierAsync(CancellationToken.None)));
        }

        await DisposeAll(groups);
    }

    internal static async Task DisposeAll(IEnumerable<ICollectiveGroup> groups)
    {
        foreach (var g in groups)
        {
            await g.DisposeAsync();
        }
    }
}

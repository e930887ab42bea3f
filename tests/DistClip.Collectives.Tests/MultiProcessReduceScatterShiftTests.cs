using System.Diagnostics;
using System.Globalization;
using DistClip.Collectives.TestPeer;

namespace DistClip.Collectives.Tests;

/// <summary>Reduce-scatter and ring shift over the gRPC transport between real OS processes.</summary>
[Collection(MultiProcessCollection.Name)]
public sealed class MultiProcessReduceScatterShiftTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task ReduceScatter_and_shift_across_processes_give_exactly_the_reference_bits(int n)
    {
        await using var cluster = await PeerCluster.StartAsync(n, TimeSpan.FromSeconds(60));

        // Empty and one-element blocks, then blocks of many 1 MiB frames (4,194,304 floats = 16 MiB).
        foreach (var all in new[] { new[] { 1, 0, 7, 1 }, new[] { 1_000_003, 4_194_304, 0, 262_145 } })
        {
            var counts = all.Take(n).ToArray();
            const int seed = 5;
            var results = await cluster.RunAsync($"reducescatter {counts.Sum()} {seed} {string.Join(',', counts)}");

            for (int r = 0; r < n; r++)
            {
                string what = $"reduce-scatter of [{string.Join(", ", counts)}] at N={n}, rank {r}'s block";
                // Exact bits, not just closeness: the ring adds block r in one documented order.
                Assert.True(TestData.Sha256(RingOrderSum(counts, seed, r)) == results[r][1], $"{what}: not the bits of the ring-order sum");
                double error = double.Parse(results[r][2], CultureInfo.InvariantCulture);
                Assert.True(error <= 1.0, $"{what}: error {error} times the float32 bound against the float64 reference");
            }
        }

        foreach (int count in new[] { 0, 7, 1_000_003 })
        {
            const int seed = 11;
            var results = await cluster.RunAsync($"shift {count} {seed}");

            for (int r = 0; r < n; r++)
            {
                int left = (r - 1 + n) % n;
                var expected = PeerData.Fill(PeerData.ShiftCount(count, left), seed, left);
                Assert.True(TestData.Sha256(expected) == results[r][1],
                    $"shift of {count} + rank floats at N={n}: rank {r} did not receive rank {left}'s {expected.Length} floats ({results[r][2]} differ)");
            }
        }
    }

    [Fact]
    public async Task A_shift_whose_receive_length_differs_from_the_left_neighbours_send_fails_on_the_receiver_naming_both_sizes()
    {
        var timeout = TimeSpan.FromSeconds(30);
        await using var cluster = await PeerCluster.StartAsync(3, timeout);
        var clock = Stopwatch.StartNew();

        // Rank 1 sends 1000 + 1 floats; rank 2 expects one more.
        foreach (var peer in cluster.Peers)
        {
            peer.Send("shift 1000 3 2");
        }

        await Task.WhenAll(cluster.Peers.Select(p => p.ExpectAsync("STARTED", PeerCluster.Deadline)));
        var lines = await Task.WhenAll(cluster.Peers.Select(p => p.ExpectAsync("", PeerCluster.Deadline)));

        Assert.True(clock.Elapsed < timeout, $"took {clock.Elapsed}: someone waited for the {timeout} timeout");
        Assert.StartsWith("ERR CollectiveMismatchException", lines[2]);
        Assert.Contains("expects 1002 elements from rank 1", lines[2]);
        Assert.Contains("which sends 1001", lines[2]);
        // The others finished before rank 2 refused, or saw its links break.
        foreach (var line in lines.Take(2))
        {
            Assert.Matches("^(OK |ERR PeerFailedException )", line);
        }
    }

    /// <summary>Block b as the ring sums it: start at rank b + 1, add each next rank's block in turn.</summary>
    private static float[] RingOrderSum(int[] counts, int seed, int block)
    {
        int n = counts.Length;
        int offset = counts.Take(block).Sum();
        float[] Slice(int rank) => PeerData.Fill(counts.Sum(), seed, rank).AsSpan(offset, counts[block]).ToArray();
        var sum = Slice((block + 1) % n);
        for (int k = 2; k <= n; k++)
        {
            var next = Slice((block + k) % n);
            for (int i = 0; i < sum.Length; i++)
            {
                sum[i] += next[i];
            }
        }

        return sum;
    }
}

using System.Diagnostics;
using System.Globalization;

namespace DistClip.Collectives.Tests;

/// <summary>The gRPC transport between real OS processes on 127.0.0.1.</summary>
[Collection(MultiProcessCollection.Name)]
public sealed class MultiProcessTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task Collectives_across_processes_match_the_reference_and_agree_bit_for_bit(int n)
    {
        await using var cluster = await PeerCluster.StartAsync(n, TimeSpan.FromSeconds(60));

        foreach (int count in new[] { 1, 7, 1_000_003, 16_777_216 })
        {
            var results = await cluster.RunAsync($"allreduce {count} {count % 1000}");
            AssertAgree($"all-reduce of {count} floats at N={n}", results, maxError: 1.0);
        }

        // 4,194,304 per rank gathers 16,777,216 floats (64 MiB) at N = 4.
        foreach (int count in new[] { 1, 7, 1_000_003, 4_194_304 })
        {
            var results = await cluster.RunAsync($"allgather {count} 7");
            AssertAgree($"all-gather of {count} floats per rank at N={n}", results, maxError: 0);
        }

        foreach (int count in new[] { 1, 7, 1_000_003, 16_777_216 })
        {
            var results = await cluster.RunAsync($"broadcast {count} 9 {n - 1}");
            AssertAgree($"broadcast of {count} floats from rank {n - 1} at N={n}", results, maxError: 0);
        }

        await cluster.RunAsync("barrier");
    }

    [Fact]
    public async Task Killing_a_rank_mid_all_reduce_fails_every_other_rank_within_the_timeout()
    {
        var timeout = TimeSpan.FromSeconds(10);
        await using var cluster = await PeerCluster.StartAsync(4, timeout);
        var victim = cluster.Peers[2];
        var survivors = cluster.Peers.Where(p => p != victim).ToArray();

        // The survivors enter a 64 MiB all-reduce and block on data that must pass through the victim.
        victim.Send("stall");
        await victim.ExpectAsync("STALLING", PeerCluster.Deadline);
        foreach (var peer in survivors)
        {
            peer.Send("allreduce 16777216 3");
        }

        await Task.WhenAll(survivors.Select(p => p.ExpectAsync("STARTED", PeerCluster.Deadline)));
        var clock = Stopwatch.StartNew();
        victim.Kill();

        var margin = TimeSpan.FromSeconds(5);
        var lines = await Task.WhenAll(survivors.Select(p => p.ExpectAsync("ERR", timeout + margin)));
        var elapsed = clock.Elapsed;
        Assert.True(elapsed < timeout + margin, $"survivors took {elapsed} to fail; the bound is {timeout} + {margin}");
        foreach (var line in lines)
        {
            Assert.Matches("^ERR (PeerFailedException|CollectiveTimeoutException) ", line);
            Assert.Contains("AllReduce #1", line);
        }

        // Whoever notices first names the victim; the others may hear it from a neighbour that aborted.
        Assert.True(lines.Any(l => l.Contains("rank 2 (", StringComparison.Ordinal)), $"no survivor named rank 2:\n{string.Join("\n", lines)}");
    }

    [Fact]
    public async Task A_rank_that_stops_answering_makes_the_others_time_out_naming_it()
    {
        var timeout = TimeSpan.FromSeconds(2);
        await using var cluster = await PeerCluster.StartAsync(3, timeout);
        cluster.Peers[1].Send("stall");
        await cluster.Peers[1].ExpectAsync("STALLING", PeerCluster.Deadline);
        var clock = Stopwatch.StartNew();
        cluster.Peers[0].Send("allreduce 1000 1");
        cluster.Peers[2].Send("allreduce 1000 1");

        var lines = await Task.WhenAll(new[] { cluster.Peers[0], cluster.Peers[2] }.Select(async p =>
        {
            await p.ExpectAsync("STARTED", PeerCluster.Deadline);
            return await p.ExpectAsync("ERR", PeerCluster.Deadline);
        }));

        Assert.True(clock.Elapsed < timeout + TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
        Assert.True(clock.Elapsed >= timeout * 0.9, $"failed after {clock.Elapsed}, before the {timeout} timeout");
        // Rank 2 waits for frames from rank 1 (its left neighbour): it times out naming rank 1.
        Assert.StartsWith("ERR CollectiveTimeoutException", lines[1]);
        Assert.Contains("rank 1", lines[1]);
    }

    private static void AssertAgree(string what, string[][] results, double maxError)
    {
        var hashes = results.Select(r => r[1]).Distinct().ToArray();
        Assert.True(hashes.Length == 1, $"{what}: ranks disagree, SHA-256 {string.Join(" / ", hashes)}");
        foreach (var (fields, rank) in results.Select((f, r) => (f, r)))
        {
            double error = double.Parse(fields[2], CultureInfo.InvariantCulture);
            Assert.True(error <= maxError, $"{what}: rank {rank} error {error} (limit {maxError}; all-reduce: ratio to the float32 bound, others: wrong elements)");
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MultiProcessCollection
{
    public const string Name = "multi-process";
}

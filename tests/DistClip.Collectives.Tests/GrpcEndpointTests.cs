using System.Globalization;
using DistClip.Collectives.Grpc;
using Grpc.Core;
using Grpc.Net.Client;

namespace DistClip.Collectives.Tests;

/// <summary>The gRPC endpoint in-process: admission (secret, generation, neighbour) and a quick ring.</summary>
public sealed class GrpcEndpointTests
{
    private const string Secret = "run-secret";

    [Fact]
    public async Task A_link_with_a_wrong_secret_is_refused_with_PermissionDenied()
    {
        await using var endpoint = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret });

        var error = await Assert.ThrowsAsync<RpcException>(() => OpenRawLinkAsync(endpoint.Address, "wrong", generation: 1, rank: 0, worldSize: 2));

        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
    }

    [Fact]
    public async Task A_link_from_a_stale_generation_is_refused_with_FailedPrecondition()
    {
        await using var a = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret });
        await using var b = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret });
        var groups = await JoinAsync([a, b], generation: 5);

        var error = await Assert.ThrowsAsync<RpcException>(() => OpenRawLinkAsync(b.Address, Secret, generation: 4, rank: 0, worldSize: 2));

        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("stale generation 4", error.Status.Detail);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Fact]
    public async Task Joining_with_a_wrong_secret_fails_naming_the_peer_that_refused()
    {
        await using var a = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret });
        await using var stranger = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = "other", ConnectTimeout = TimeSpan.FromSeconds(5) });
        var peers = new[] { a.Address, stranger.Address };

        var join = stranger.JoinAsync(new CollectiveMembership(1, peers, 1), null, CancellationToken.None);
        var refused = await Assert.ThrowsAsync<PeerFailedException>(() => join);

        Assert.Equal(0, refused.Peer!.Rank);
        Assert.Contains("PermissionDenied", refused.Message);
    }

    [Fact]
    public async Task Cancelling_one_rank_fails_its_neighbour_through_the_broken_stream()
    {
        await using var a = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret });
        await using var b = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret });
        await using var c = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret });
        var groups = await JoinAsync([a, b, c], generation: 1);
        using var cancel = new CancellationTokenSource();
        // Rank 2 never joins the operation, so ranks 0 and 1 stay blocked until rank 0 is cancelled.
        var rank0 = groups[0].AllReduceSumAsync(new float[1000], cancel.Token);
        var rank1 = groups[1].AllReduceSumAsync(new float[1000], CancellationToken.None);

        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rank0);
        var neighbour = await Assert.ThrowsAsync<PeerFailedException>(() => rank1);
        Assert.Equal(0, neighbour.Peer!.Rank);
        Assert.Contains("AllReduce #1", neighbour.Message);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public async Task A_ring_of_endpoints_all_reduces_bit_identically(int n)
    {
        var endpoints = new List<GrpcCollectiveEndpoint>();
        for (int r = 0; r < n; r++)
        {
            endpoints.Add(await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret }));
        }

        var groups = await JoinAsync(endpoints, generation: 1, new CollectiveOptions { ChunkBytes = 4096 });
        var inputs = Enumerable.Range(0, n).Select(r => TestData.Random(10_007, r)).ToArray();
        var results = inputs.Select(x => (float[])x.Clone()).ToArray();

        await Task.WhenAll(groups.Select((g, r) => g.AllReduceSumAsync(results[r], CancellationToken.None)));
        await Task.WhenAll(groups.Select(g => g.BarrierAsync(CancellationToken.None)));

        TestData.AssertClose(inputs, results[0]);
        Assert.Single(results.Select(x => TestData.Sha256(x)).Distinct());
        await InMemoryRingTests.DisposeAll(groups);
        foreach (var e in endpoints)
        {
            await e.DisposeAsync();
        }
    }

    private static async Task<ICollectiveGroup[]> JoinAsync(
        IReadOnlyList<GrpcCollectiveEndpoint> endpoints, long generation, CollectiveOptions? options = null)
    {
        var peers = endpoints.Select(e => e.Address).ToArray();
        return await Task.WhenAll(endpoints.Select((e, r) =>
            e.JoinAsync(new CollectiveMembership(r, peers, generation), options, CancellationToken.None)));
    }

    /// <summary>Opens CollectiveLink.Open by hand, as a stranger or a stale peer would, and waits for the verdict.</summary>
    private static async Task OpenRawLinkAsync(Uri address, string secret, long generation, int rank, int worldSize)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var metadata = new Metadata
        {
            { "x-distclip-secret", secret },
            { "x-distclip-generation", generation.ToString(CultureInfo.InvariantCulture) },
            { "x-distclip-rank", rank.ToString(CultureInfo.InvariantCulture) },
            { "x-distclip-world-size", worldSize.ToString(CultureInfo.InvariantCulture) },
        };
        using var call = channel.CreateCallInvoker().AsyncDuplexStreamingCall(
            LinkMethods.ClientOpen, null, new CallOptions(metadata, deadline: DateTime.UtcNow.AddSeconds(30)));
        await call.ResponseHeadersAsync;
        await call.ResponseStream.MoveNext(CancellationToken.None);
    }
}

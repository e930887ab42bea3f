using System.Globalization;
using DistClip.Collectives.Grpc;
using DistClip.Collectives.Grpc.Http2;
using DistClip.Collectives.TestPeer;
using Grpc.Core;
using Grpc.Net.Client;

namespace DistClip.Collectives.Tests;

/// <summary>The gRPC endpoint in-process: admission (secret, generation, neighbour) and a quick ring.</summary>
public sealed class GrpcEndpointTests
{
    private const string Secret = "run-secret";

    /// <summary>The stock Grpc.Net.Client against either server: both answer as gRPC services do.</summary>
    [Theory]
    [InlineData(LinkServer.Http2Direct)]
    [InlineData(LinkServer.Kestrel)]
    public async Task A_link_with_a_wrong_secret_is_refused_with_Unauthenticated(LinkServer server)
    {
        await using var endpoint = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret, Server = server });

        var error = await Assert.ThrowsAsync<RpcException>(() => OpenRawLinkAsync(endpoint.Address, "wrong", generation: 1, rank: 0, worldSize: 2));

        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.EndsWith("presented a wrong or missing secret.", error.Status.Detail);
    }

    [Theory]
    [InlineData(LinkServer.Http2Direct)]
    [InlineData(LinkServer.Kestrel)]
    public async Task A_link_from_a_stale_generation_is_refused_with_FailedPrecondition(LinkServer server)
    {
        await using var a = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret, Server = server });
        await using var b = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret, Server = server });
        var groups = await JoinAsync([a, b], generation: 5);

        var error = await Assert.ThrowsAsync<RpcException>(() => OpenRawLinkAsync(b.Address, Secret, generation: 4, rank: 0, worldSize: 2));

        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("stale generation 4", error.Status.Detail);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Theory]
    [InlineData(LinkClient.Http2Direct, LinkServer.Http2Direct)]
    [InlineData(LinkClient.GrpcNetClient, LinkServer.Http2Direct)]
    [InlineData(LinkClient.Http2Direct, LinkServer.Kestrel)]
    public async Task Joining_with_a_wrong_secret_fails_naming_the_peer_that_refused(LinkClient client, LinkServer server)
    {
        await using var a = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret, Server = server });
        await using var stranger = await GrpcCollectiveEndpoint.StartAsync(
            new GrpcTransportOptions { Secret = "other", ConnectTimeout = TimeSpan.FromSeconds(5), Client = client });
        var peers = new[] { a.Address, stranger.Address };

        var join = stranger.JoinAsync(new CollectiveMembership(1, peers, 1, PeerTokens.For(Secret, 1, 1, 2)), null, CancellationToken.None);
        var refused = await Assert.ThrowsAsync<PeerFailedException>(() => join);

        Assert.Equal(0, refused.Peer!.Rank);
        Assert.Contains("Unauthenticated", refused.Message);
        Assert.Contains("presented a wrong or missing secret", refused.Message);
    }

    /// <summary>
    /// A neighbour that holds the secret but presents a token other than the one the coordinator told
    /// rank 1 to expect from rank 0 (here: rank 1's own, the token a worker has) is refused; the real
    /// rank 0 then links, and the ring works.
    /// </summary>
    [Theory]
    [InlineData(LinkServer.Http2Direct)]
    [InlineData(LinkServer.Kestrel)]
    public async Task A_link_presenting_another_ranks_token_is_refused_with_PermissionDenied(LinkServer server)
    {
        var options = new GrpcTransportOptions { Secret = Secret, Server = server };
        await using var a = await GrpcCollectiveEndpoint.StartAsync(options);
        await using var b = await GrpcCollectiveEndpoint.StartAsync(options);
        var peers = new[] { a.Address, b.Address };
        var joinB = b.JoinAsync(new CollectiveMembership(1, peers, 1, PeerTokens.For(Secret, 1, 1, 2)), null, CancellationToken.None);

        var error = await Assert.ThrowsAsync<RpcException>(
            () => OpenRawLinkAsync(b.Address, Secret, generation: 1, rank: 0, worldSize: 2, token: PeerTokens.Of(Secret, 1, 1)));

        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        Assert.Contains("presented a token that does not match rank 0 generation 1", error.Status.Detail);
        var joinA = a.JoinAsync(new CollectiveMembership(0, peers, 1, PeerTokens.For(Secret, 1, 0, 2)), null, CancellationToken.None);
        var groups = await Task.WhenAll(joinA, joinB);
        await AssertAllReduceAsync(groups);
        await InMemoryRingTests.DisposeAll(groups);
    }

    /// <summary>
    /// A link claiming a generation this endpoint has not been assigned yet, with the only token a
    /// neighbour of the current generation holds: when the endpoint joins that generation, the token
    /// is not the one it expects, so the link is refused instead of taking the real neighbour's place.
    /// </summary>
    [Theory]
    [InlineData(LinkServer.Http2Direct)]
    [InlineData(LinkServer.Kestrel)]
    public async Task A_link_from_a_future_generation_is_refused_with_PermissionDenied(LinkServer server)
    {
        var options = new GrpcTransportOptions { Secret = Secret, Server = server };
        await using var a = await GrpcCollectiveEndpoint.StartAsync(options);
        await using var b = await GrpcCollectiveEndpoint.StartAsync(options);
        var first = await JoinAsync([a, b], generation: 1);

        var early = OpenRawLinkAsync(b.Address, Secret, generation: 2, rank: 0, worldSize: 2, token: PeerTokens.Of(Secret, 1, 0));
        var second = await JoinAsync([a, b], generation: 2);

        var error = await Assert.ThrowsAsync<RpcException>(() => early);
        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        Assert.Contains("presented a token that does not match rank 0 generation 2", error.Status.Detail);
        await AssertAllReduceAsync(second);
        await InMemoryRingTests.DisposeAll(second);
        await InMemoryRingTests.DisposeAll(first);
    }

    private static async Task AssertAllReduceAsync(ICollectiveGroup[] groups)
    {
        var inputs = Enumerable.Range(0, groups.Length).Select(r => TestData.Random(1000, r)).ToArray();
        var results = inputs.Select(x => (float[])x.Clone()).ToArray();
        await Task.WhenAll(groups.Select((g, r) => g.AllReduceSumAsync(results[r], CancellationToken.None)));
        TestData.AssertClose(inputs, results[0]);
        Assert.Equal(TestData.Sha256(results[0]), TestData.Sha256(results[1]));
    }

    /// <summary>
    /// Every client against every server. The direct pair also runs with the smallest HTTP/2 windows
    /// and frames, so that messages (and their prefixes) are cut across many DATA frames and every
    /// send waits for WINDOW_UPDATEs.
    /// </summary>
    [Theory]
    [InlineData(LinkClient.Http2Direct, LinkServer.Http2Direct, false)]
    [InlineData(LinkClient.Http2Direct, LinkServer.Http2Direct, true)]
    [InlineData(LinkClient.GrpcNetClient, LinkServer.Http2Direct, false)]
    [InlineData(LinkClient.Http2Direct, LinkServer.Kestrel, false)]
    [InlineData(LinkClient.Http2Direct, LinkServer.Kestrel, true)]
    [InlineData(LinkClient.GrpcNetClient, LinkServer.Kestrel, false)]
    public async Task Every_link_client_and_server_all_reduce_a_large_tensor_bit_identically(
        LinkClient client, LinkServer server, bool smallestWindowsAndFrames)
    {
        var options = new GrpcTransportOptions { Secret = Secret, Client = client, Server = server };
        if (smallestWindowsAndFrames)
        {
            options = options with { StreamWindowBytes = 65_535, ConnectionWindowBytes = 65_535, MaxFrameBytes = 16_384 };
        }

        await using var a = await GrpcCollectiveEndpoint.StartAsync(options);
        await using var b = await GrpcCollectiveEndpoint.StartAsync(options);
        var groups = await JoinAsync([a, b], generation: 1, new CollectiveOptions { ChunkBytes = 1 << 20 });
        var inputs = Enumerable.Range(0, 2).Select(r => TestData.Random(1_000_003, r)).ToArray();
        var results = inputs.Select(x => (float[])x.Clone()).ToArray();
        var gathered = new float[2][];

        await Task.WhenAll(groups.Select((g, r) => g.AllReduceSumAsync(results[r], CancellationToken.None)));
        await Task.WhenAll(groups.Select((g, r) => g.AllGatherAsync(inputs[r].AsMemory(0, 7), gathered[r] = new float[14], CancellationToken.None)));

        TestData.AssertClose(inputs, results[0]);
        Assert.Equal(TestData.Sha256(results[0]), TestData.Sha256(results[1]));
        Assert.Equal(inputs[0][..7].Concat(inputs[1][..7]), gathered[0]);
        Assert.Equal(gathered[0], gathered[1]);
        await InMemoryRingTests.DisposeAll(groups);
    }

    [Theory]
    [InlineData(LinkServer.Http2Direct)]
    [InlineData(LinkServer.Kestrel)]
    public async Task The_direct_client_reads_a_refusal_from_the_trailers(LinkServer server)
    {
        await using var endpoint = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Secret, Server = server });
        using var call = await Http2LinkCall.StartAsync(endpoint.Address, LinkMethods.ClientOpen.FullName, LinkMetadata("wrong % secret"), CancellationToken.None);

        var headers = await call.ResponseHeadersAsync.WaitAsync(TimeSpan.FromSeconds(30));
        var error = await Assert.ThrowsAsync<RpcException>(() => call.Completion.WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Null(headers.GetValue("x-distclip-accepted"));
        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.EndsWith("presented a wrong or missing secret.", error.Status.Detail);
    }

    [Fact]
    public async Task The_direct_client_fails_Unavailable_when_nothing_listens_or_the_peer_hangs_up()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var address = new Uri($"http://127.0.0.1:{((System.Net.IPEndPoint)listener.LocalEndpoint).Port}/");
        var hangUp = Task.Run(async () =>
        {
            using var accepted = await listener.AcceptSocketAsync();
            accepted.Close(); // not an HTTP/2 server: it closes the connection unanswered
        });

        // Depending on timing the hang-up is seen while the call is being started or while it waits for headers.
        var lost = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = await Http2LinkCall.StartAsync(address, LinkMethods.ClientOpen.FullName, LinkMetadata(Secret), CancellationToken.None);
            await call.ResponseHeadersAsync.WaitAsync(TimeSpan.FromSeconds(30));
        });
        await hangUp;
        listener.Stop();
        var refused = await Assert.ThrowsAsync<RpcException>(() =>
            Http2LinkCall.StartAsync(address, LinkMethods.ClientOpen.FullName, LinkMetadata(Secret), CancellationToken.None));

        Assert.Equal(StatusCode.Unavailable, lost.StatusCode);
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("ConnectionRefused", refused.Status.Detail);
    }

    [Theory]
    [InlineData(LinkServer.Http2Direct)]
    [InlineData(LinkServer.Kestrel)]
    public async Task Cancelling_one_rank_fails_its_neighbour_through_the_broken_stream(LinkServer server)
    {
        var options = new GrpcTransportOptions { Secret = Secret, Server = server };
        await using var a = await GrpcCollectiveEndpoint.StartAsync(options);
        await using var b = await GrpcCollectiveEndpoint.StartAsync(options);
        await using var c = await GrpcCollectiveEndpoint.StartAsync(options);
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
            e.JoinAsync(new CollectiveMembership(r, peers, generation, PeerTokens.For(Secret, generation, r, peers.Length)), options, CancellationToken.None)));
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n\r\n")] // not HTTP/2
    [InlineData("")]                                      // nothing at all: dropped after the handshake timeout
    public async Task The_direct_server_drops_a_connection_that_is_not_an_h2c_call(string greeting)
    {
        await using var endpoint = await GrpcCollectiveEndpoint.StartAsync(
            new GrpcTransportOptions { Secret = Secret, ConnectTimeout = TimeSpan.FromSeconds(1), HandshakeTimeout = TimeSpan.FromSeconds(1) });
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint.Address.Host, endpoint.Address.Port);
        await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(greeting), System.Net.Sockets.SocketFlags.None);

        // The server closes its side: the read ends (0 bytes, or a reset) well within the deadline.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var buffer = new byte[4096];
        try
        {
            while (await socket.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None, deadline.Token) > 0)
            {
            }
        }
        catch (System.Net.Sockets.SocketException)
        {
            // A reset is a close too.
        }

        Assert.False(deadline.IsCancellationRequested);
    }

    private static Dictionary<string, string> LinkMetadata(string secret) => new()
    {
        ["x-distclip-secret"] = secret,
        ["x-distclip-generation"] = "1",
        ["x-distclip-rank"] = "0",
        ["x-distclip-world-size"] = "2",
    };

    /// <summary>Opens CollectiveLink.Open by hand, as a stranger or a stale peer would, and waits for the verdict.</summary>
    private static async Task OpenRawLinkAsync(Uri address, string secret, long generation, int rank, int worldSize, byte[]? token = null)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var metadata = new Metadata
        {
            { "x-distclip-secret", secret },
            { "x-distclip-generation", generation.ToString(CultureInfo.InvariantCulture) },
            { "x-distclip-rank", rank.ToString(CultureInfo.InvariantCulture) },
            { "x-distclip-world-size", worldSize.ToString(CultureInfo.InvariantCulture) },
        };
        if (token is not null)
        {
            metadata.Add("x-distclip-rank-token", Convert.ToHexString(token));
        }

        using var call = channel.CreateCallInvoker().AsyncDuplexStreamingCall(
            LinkMethods.ClientOpen, null, new CallOptions(metadata, deadline: DateTime.UtcNow.AddSeconds(30)));
        await call.ResponseHeadersAsync;
        await call.ResponseStream.MoveNext(CancellationToken.None);
    }
}

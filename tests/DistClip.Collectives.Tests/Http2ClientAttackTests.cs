using System.Net;
using System.Net.Sockets;
using DistClip.Collectives.Grpc;
using DistClip.Collectives.Grpc.Http2;
using DistClip.Collectives.Transport;
using Grpc.Core;
using static DistClip.Collectives.Tests.RawHttp2;

namespace DistClip.Collectives.Tests;

/// <summary>
/// The direct client end against a hostile server (a compromised neighbour) on real loopback
/// sockets: what it sends is bounded and checked, the call fails naming the broken rule, and the
/// client closes its connection. Not run beside other tests: the CONTINUATION test measures the
/// process's allocations.
/// </summary>
[Collection(nameof(Http2FuzzTests))]
public sealed class Http2ClientAttackTests
{
    private static readonly Dictionary<string, string> Metadata = new()
    {
        [LinkHeaders.Secret] = Secret,
        [LinkHeaders.Generation] = "1",
        [LinkHeaders.Rank] = "0",
        [LinkHeaders.WorldSize] = "2",
    };

    /// <summary>A call to a server the test scripts: its socket, and what the client sent until it closed.</summary>
    internal static async Task<(Http2LinkCall Call, Socket Server, Task<(byte[] Received, bool Closed)> ClientClosed)> CallAsync()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var address = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}/");
        var start = Http2LinkCall.StartAsync(address, LinkMethods.ClientOpen.FullName, Metadata, CancellationToken.None, maxHeaderBytes: 16 << 10);
        var server = await listener.AcceptAsync();
        var call = await start;
        return (call, server, ReadUntilClosedAsync(server, Patience));
    }

    public static TheoryData<string, byte[], string> Attacks()
    {
        var block = new List<byte>();
        Literal(block, ":status", "200", huffman: false);
        var data = new TheoryData<string, byte[], string>
        {
            { "MAX_FRAME_SIZE 0", Settings((Http2Frames.SettingMaxFrameSize, 0)), "PROTOCOL_ERROR" },
            { "MAX_FRAME_SIZE 2^24", Settings((Http2Frames.SettingMaxFrameSize, 1 << 24)), "PROTOCOL_ERROR" },
            { "INITIAL_WINDOW_SIZE 2^31", Settings((Http2Frames.SettingInitialWindowSize, 1u << 31)), "FLOW_CONTROL_ERROR" },
            { "ENABLE_PUSH 2", Settings((Http2Frames.SettingEnablePush, 2)), "PROTOCOL_ERROR" },
            { "SETTINGS of 7 bytes", Frame(Http2Frames.Settings, 0, 0, new byte[7]), "FRAME_SIZE_ERROR" },
            { "WINDOW_UPDATE of 0", WindowUpdate(1, 0), "PROTOCOL_ERROR" },
            { "connection window past 2^31-1", WindowUpdate(0, int.MaxValue), "FLOW_CONTROL_ERROR" },
            { "stream window past 2^31-1 by SETTINGS", [.. WindowUpdate(1, int.MaxValue - 65_535), .. Settings((Http2Frames.SettingInitialWindowSize, 65_536))], "FLOW_CONTROL_ERROR" },
            { "a frame of 16 MiB", Header((1 << 24) - 1, Http2Frames.Data, 0, 1), "FRAME_SIZE_ERROR" },
            { "CONTINUATION without HEADERS", Frame(Http2Frames.Continuation, Http2Frames.EndHeadersFlag, 1, block.ToArray()), "PROTOCOL_ERROR" },
            { "HEADERS interrupted by a PING", [.. Frame(Http2Frames.Headers, 0, 1, block.ToArray()), .. Ping()], "PROTOCOL_ERROR" },
            { "PUSH_PROMISE", Frame(Http2Frames.PushPromise, Http2Frames.EndHeadersFlag, 1, new byte[4]), "PROTOCOL_ERROR" },
            { "DATA padded past its end", Frame(Http2Frames.Data, Http2Frames.PaddedFlag, 1, [9, 1, 2]), "PROTOCOL_ERROR" },
            { "DATA on stream 3", Frame(Http2Frames.Data, 0, 3, new byte[4]), "PROTOCOL_ERROR" },
            { "a PING of 9 bytes", Frame(Http2Frames.Ping, 0, 0, new byte[9]), "FRAME_SIZE_ERROR" },
            { "a Huffman string with EOS", Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag, 1, [0x00, 0x84, 0xff, 0xff, 0xff, 0xfc, 0x00]), "COMPRESSION_ERROR" },
            { "RST_STREAM mid-call", Http2Frames.ErrorFrame(Http2Frames.RstStream, 1, Http2Frames.Cancel), "reset the stream" },
            { "GOAWAY with an error", Http2Frames.ErrorFrame(Http2Frames.GoAway, 0, Http2Frames.ProtocolError), "GOAWAY" },
        };
        return data;
    }

    [Theory]
    [MemberData(nameof(Attacks))]
    public async Task A_rule_broken_by_the_server_fails_the_call_naming_it_and_closes_the_connection(string attack, byte[] frames, string named)
    {
        var (call, server, clientClosed) = await CallAsync();
        using var _ = call;
        using var __ = server;

        await TrySendAsync(server, frames);
        var error = await Assert.ThrowsAsync<RpcException>(() => call.Completion.WaitAsync(Patience));
        bool protocolError = !named.Contains(' ', StringComparison.Ordinal) && named != "GOAWAY";
        if (!protocolError)
        {
            call.Dispose(); // a reset stream or a GOAWAY ends the call, and its owner closes the connection
        }

        var (sent, closed) = await clientClosed;

        Assert.True(error.Status.Detail.Contains(named, StringComparison.Ordinal), $"{attack}: {error.Status.Detail}");
        Assert.True(closed, $"{attack}: the client kept its connection open");
        Assert.True(sent.Length < 4096, $"{attack}: the client sent {sent.Length} bytes");
        if (protocolError)
        {
            // The client read all the server sent, so its GOAWAY (sent before it closed) arrives.
            Assert.Equal(named, Http2Frames.ErrorName(GoAwayCode(sent.AsSpan(Http2Frames.Preface.Length)) ?? uint.MaxValue));
        }
    }

    [Fact]
    public async Task After_MAX_FRAME_SIZE_0_a_write_fails_rather_than_sending_empty_frames()
    {
        var (call, server, clientClosed) = await CallAsync();
        using var _ = call;
        using var __ = server;

        await TrySendAsync(server, (byte[])[.. Settings((Http2Frames.SettingMaxFrameSize, 0)), .. WindowUpdate(0, 1 << 20), .. WindowUpdate(1, 1 << 20)]);
        await Assert.ThrowsAsync<RpcException>(() => call.Completion.WaitAsync(Patience));
        var write = await Assert.ThrowsAsync<RpcException>(async () =>
            await call.WriteAsync(new FrameHeader(1, 1, CollectiveOperation.AllReduce, 0, 65_536), new byte[65_536], CancellationToken.None)
                .AsTask().WaitAsync(Patience));
        var (sent, closed) = await clientClosed;

        Assert.Contains("PROTOCOL_ERROR", write.Status.Detail);
        Assert.True(closed);
        Assert.True(sent.Length < 4096, $"the client sent {sent.Length} bytes");
    }

    [Fact]
    public async Task CONTINUATION_frames_without_end_stop_at_the_header_bound()
    {
        var (call, server, clientClosed) = await CallAsync();
        using var _ = call;
        using var __ = server;
        var block = new List<byte>();
        Literal(block, ":status", "200", huffman: false);

        // The probe's attack: CONTINUATION frames without end, for as long as the client takes them
        // (it grew to 4.1 GiB). The client gives up after 16 KiB and closes, which is what stops the
        // sender here: the offer has no bound of its own but the deadline.
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        await TrySendAsync(server, Frame(Http2Frames.Headers, 0, 1, block.ToArray()));
        var continuation = Frame(Http2Frames.Continuation, 0, 1, new byte[16_384]);
        long offered = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < Patience && await TrySendAsync(server, continuation))
        {
            offered += continuation.Length;
        }

        var error = await Assert.ThrowsAsync<RpcException>(() => call.Completion.WaitAsync(Patience));
        var (_, closed) = await clientClosed;
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;

        Assert.Contains("header block over 16384 bytes", error.Status.Detail);
        Assert.True(closed);
        Assert.True(clock.Elapsed < Patience, $"the client was still taking CONTINUATION frames after {Patience} ({offered:N0} bytes)");
        // Loopback buffers take a few MiB before the close is seen; the client itself keeps 16 KiB.
        Assert.True(allocated < 64L << 20, $"{allocated:N0} bytes allocated while {offered:N0} bytes of CONTINUATION were offered");
    }

    [Fact]
    public async Task Huffman_coded_response_headers_and_padded_DATA_are_read()
    {
        var (call, server, clientClosed) = await CallAsync();
        using var _ = call;
        using var __ = server;
        byte[] response = ServerResponse(accepted: true, huffman: true);
        var frames = Frames(response);
        byte[] settings = Frame(frames[0].Type, frames[0].Flags, frames[0].Stream, frames[0].Payload);
        byte[] headers = Frame(frames[1].Type, frames[1].Flags, frames[1].Stream, frames[1].Payload);
        byte[] trailers = Frame(frames[2].Type, frames[2].Flags, frames[2].Stream, frames[2].Payload);

        await TrySendAsync(server, (byte[])
        [
            .. settings, .. headers,
            .. Frame(Http2Frames.Data, Http2Frames.PaddedFlag, 1, [3, 0, 0, 0, 0, 0, 9, 9, 9]),
            .. trailers,
        ]);
        var metadata = await call.ResponseHeadersAsync.WaitAsync(Patience);
        await call.Completion.WaitAsync(Patience);

        Assert.Equal("1", metadata.GetValue(LinkHeaders.Accepted));
        server.Shutdown(SocketShutdown.Send);
        call.Dispose();
        Assert.True((await clientClosed).Closed);
    }

    [Fact]
    public async Task A_response_cut_at_every_byte_ends_the_call_and_nothing_escapes()
    {
        byte[] response = ServerResponse();

        var outcomes = await Task.WhenAll(Enumerable.Range(0, response.Length + 1).Select(async length =>
        {
            var (call, server, clientClosed) = await CallAsync();
            using var _ = server;
            await TrySendAsync(server, response.AsMemory(0, length));
            server.Shutdown(SocketShutdown.Send); // the server goes away mid-response
            Exception? failure = null;
            try
            {
                await call.Completion.WaitAsync(Patience);
            }
            catch (RpcException ex)
            {
                failure = ex;
            }

            call.Dispose();
            var (_, closed) = await clientClosed;
            Assert.True(closed);
            return (length, failure);
        }));

        Assert.All(outcomes.Where(o => o.length < response.Length), o => Assert.True(o.failure is RpcException, $"cut at {o.length}"));
        Assert.Null(outcomes.Single(o => o.length == response.Length).failure);
    }
}

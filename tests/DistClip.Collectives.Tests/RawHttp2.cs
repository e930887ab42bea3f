using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using DistClip.Collectives.Grpc;
using DistClip.Collectives.Grpc.Http2;
using DistClip.Collectives.Transport;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Collectives.Tests;

/// <summary>
/// Bytes on real loopback sockets, as a hostile peer writes them: frames built by hand, read back
/// until the other side closes. For the adversarial and fuzz tests of both direct HTTP/2 ends.
/// </summary>
internal static class RawHttp2
{
    public const string Secret = "run-secret";

    /// <summary>The rank token the handshake's rank 0 presents, and a group registered with <see cref="Register"/> expects.</summary>
    public static readonly byte[] LeftToken = [.. Enumerable.Range(100, 32).Select(i => (byte)i)];

    /// <summary>How long any one of these tests waits for an event before it calls it missing.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    public static byte[] Frame(byte type, byte flags, int stream, ReadOnlySpan<byte> payload) => Http2Frames.Frame(type, flags, stream, payload);

    /// <summary>A frame header claiming <paramref name="length"/> bytes, with no payload behind it.</summary>
    public static byte[] Header(int length, byte type, byte flags, int stream)
    {
        var header = new byte[Http2Frames.HeaderLength];
        Http2Frames.WriteHeader(header, length, type, flags, stream);
        return header;
    }

    public static byte[] Ping(byte flags = 0) => Frame(Http2Frames.Ping, flags, 0, new byte[8]);

    public static byte[] Settings(params (ushort Id, uint Value)[] settings) => Http2Frames.SettingsFrame(settings);

    public static byte[] WindowUpdate(int stream, uint increment) => Http2Frames.WindowUpdateFrame(stream, increment);

    /// <summary>The header block of a CollectiveLink.Open request, as the direct client writes it.</summary>
    public static byte[] RequestBlock(string secret = Secret, long generation = 1, int rank = 0, int worldSize = 2, byte[]? token = null)
    {
        var block = new List<byte>();
        HpackEncoder.WriteLiteral(block, ":method", "POST");
        HpackEncoder.WriteLiteral(block, ":scheme", "http");
        HpackEncoder.WriteLiteral(block, ":path", LinkMethods.ServerOpen.FullName);
        HpackEncoder.WriteLiteral(block, ":authority", "127.0.0.1");
        HpackEncoder.WriteLiteral(block, "content-type", "application/grpc");
        HpackEncoder.WriteLiteral(block, "te", "trailers");
        HpackEncoder.WriteLiteral(block, LinkHeaders.Secret, secret);
        HpackEncoder.WriteLiteral(block, LinkHeaders.Generation, generation.ToString(CultureInfo.InvariantCulture));
        HpackEncoder.WriteLiteral(block, LinkHeaders.Rank, rank.ToString(CultureInfo.InvariantCulture));
        HpackEncoder.WriteLiteral(block, LinkHeaders.WorldSize, worldSize.ToString(CultureInfo.InvariantCulture));
        HpackEncoder.WriteLiteral(block, LinkHeaders.RankToken, Convert.ToHexString(token ?? LeftToken));
        return [.. block];
    }

    /// <summary>Preface, SETTINGS and the request's HEADERS: a whole client handshake.</summary>
    public static byte[] ClientHandshake(string secret = Secret) =>
        [.. Http2Frames.Preface, .. Settings(), .. Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag, 1, RequestBlock(secret))];

    /// <summary>One gRPC message (5-byte prefix, then a CollectiveFrame) carrying <paramref name="payload"/>.</summary>
    public static byte[] Message(byte[] payload, long sequence = 1)
    {
        var prefix = new byte[FrameMarshaller.MaxPrefixBytes];
        var header = new FrameHeader(1, sequence, CollectiveOperation.AllReduce, 0, payload.Length);
        int n = FrameMarshaller.WritePrefix(header, payload.Length, prefix, out int messageLength);
        var message = new byte[5 + messageLength];
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(1), (uint)messageLength);
        prefix.AsSpan(0, n).CopyTo(message.AsSpan(5));
        payload.CopyTo(message.AsSpan(5 + n));
        return message;
    }

    /// <summary>A response a server writes: SETTINGS, response headers (optionally Huffman-coded), then OK trailers.</summary>
    public static byte[] ServerResponse(bool accepted = true, bool huffman = false)
    {
        var headers = new List<byte>();
        Literal(headers, ":status", "200", huffman);
        Literal(headers, "content-type", "application/grpc", huffman);
        if (accepted)
        {
            Literal(headers, LinkHeaders.Accepted, "1", huffman);
        }

        var trailers = new List<byte>();
        Literal(trailers, "grpc-status", "0", huffman);
        return
        [
            .. Settings((Http2Frames.SettingMaxFrameSize, 16_384)),
            .. Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag, 1, headers.ToArray()),
            .. Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag | Http2Frames.EndStreamFlag, 1, trailers.ToArray()),
        ];
    }

    /// <summary>A literal without indexing, its strings plain or Huffman-coded (as Kestrel writes them).</summary>
    public static void Literal(List<byte> block, string name, string value, bool huffman)
    {
        block.Add(0x00);
        foreach (var text in new[] { name, value })
        {
            var bytes = System.Text.Encoding.ASCII.GetBytes(text);
            if (huffman)
            {
                var coded = new List<byte>();
                Huffman.Encode(bytes, coded);
                HpackEncoder.WriteInteger(block, 0x80, 7, coded.Count);
                block.AddRange(coded);
            }
            else
            {
                HpackEncoder.WriteInteger(block, 0x00, 7, bytes.Length);
                block.AddRange(bytes);
            }
        }
    }

    public static async Task<Socket> ConnectAsync(IPEndPoint endpoint, int receiveBuffer = 0)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBuffer > 0)
        {
            socket.ReceiveBufferSize = receiveBuffer;
        }

        await socket.ConnectAsync(endpoint);
        return socket;
    }

    /// <summary>Sends, taking a reset as the other side having closed (which is what these peers provoke).</summary>
    public static async Task<bool> TrySendAsync(Socket socket, ReadOnlyMemory<byte> bytes)
    {
        try
        {
            while (!bytes.IsEmpty)
            {
                int n = await socket.SendAsync(bytes, SocketFlags.None);
                bytes = bytes[n..];
            }

            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Reads until the other side closes (end of stream or reset); what came, and whether it closed within <paramref name="within"/>.</summary>
    public static async Task<(byte[] Received, bool Closed)> ReadUntilClosedAsync(Socket socket, TimeSpan within)
    {
        using var deadline = new CancellationTokenSource(within);
        var received = new List<byte>();
        var buffer = new byte[16 << 10];
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
                if (n == 0)
                {
                    return ([.. received], true);
                }

                received.AddRange(buffer.AsSpan(0, n));
            }
        }
        catch (SocketException)
        {
            return ([.. received], true);
        }
        catch (OperationCanceledException)
        {
            return ([.. received], false);
        }
    }

    /// <summary>The whole frames in <paramref name="bytes"/> (a cut-off last one is left out).</summary>
    public static List<(byte Type, byte Flags, int Stream, byte[] Payload)> Frames(ReadOnlySpan<byte> bytes)
    {
        var frames = new List<(byte, byte, int, byte[])>();
        while (bytes.Length >= Http2Frames.HeaderLength)
        {
            var (length, type, flags, stream) = Http2Frames.ReadHeader(bytes);
            if (bytes.Length < Http2Frames.HeaderLength + length)
            {
                break;
            }

            frames.Add((type, flags, stream, bytes.Slice(Http2Frames.HeaderLength, length).ToArray()));
            bytes = bytes[(Http2Frames.HeaderLength + length)..];
        }

        return frames;
    }

    /// <summary>The error code of the first GOAWAY among <paramref name="bytes"/>' frames, if any.</summary>
    public static uint? GoAwayCode(ReadOnlySpan<byte> bytes)
    {
        foreach (var (type, _, _, payload) in Frames(bytes))
        {
            if (type == Http2Frames.GoAway && payload.Length >= 8)
            {
                return BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(4));
            }
        }

        return null;
    }

    /// <summary>The group of generation 1 in which the handshake's rank 0 is the left neighbour of rank 1.</summary>
    public static IncomingLink Register(LinkAcceptor acceptor) => acceptor.Register(1, rank: 1, worldSize: 2, new PeerInfo(0, "left"), LeftToken);

    public static LinkAcceptor Acceptor(TimeProvider? time = null, ILogger? logger = null) =>
        new(Secret, TimeSpan.FromSeconds(30), time ?? TimeProvider.System, logger ?? NullLogger.Instance);

    /// <summary>One server end on a connection of its own: the test's socket is the client.</summary>
    public static async Task<ServerEnd> AcceptOneAsync(GrpcTransportOptions options, LinkAcceptor acceptor, TimeProvider? time = null, int clientReceiveBuffer = 0)
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = await ConnectAsync((IPEndPoint)listener.LocalEndPoint!, clientReceiveBuffer);
        var accepted = await listener.AcceptAsync();
        var connection = new Http2LinkConnection(accepted, options, time);
        return new ServerEnd(client, connection, Task.Run(() => connection.RunAsync(acceptor, CancellationToken.None)));
    }

    public static GrpcTransportOptions Options(TimeSpan? handshake = null) =>
        new() { Secret = Secret, HandshakeTimeout = handshake ?? TimeSpan.FromSeconds(5) };
}

/// <summary>A server end under test: the client socket the test drives, the connection, and its run.</summary>
internal sealed record ServerEnd(Socket Client, Http2LinkConnection Connection, Task Run) : IDisposable
{
    /// <summary>Waits for the connection to end (it never throws: a failure is recorded) and returns why it failed.</summary>
    public async Task<Exception?> EndedAsync()
    {
        await Run.WaitAsync(RawHttp2.Patience);
        return Connection.Failure;
    }

    public void Dispose() => Client.Dispose();
}

/// <summary>Every log line, for tests that count them.</summary>
internal sealed class ListLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, EventId Id, string Message)> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(ListLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            provider.Lines.Enqueue((logLevel, eventId, formatter(state, exception)));
    }
}

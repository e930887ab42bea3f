using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Just enough of HTTP/2 over TCP (h2c, prior knowledge) to behave as no real client does: stop in
/// the middle of a header block, never send a frame at all, or open a connection only to hold it.
/// Frames the server sends are read whole; header blocks are not decoded (the tests that need a
/// gRPC status use HttpClient).
/// </summary>
internal sealed class RawHttp2Connection : IAsyncDisposable
{
    public const byte Data = 0x0, Headers = 0x1, RstStream = 0x3, Settings = 0x4, GoAway = 0x7;
    public const byte EndStream = 0x1, EndHeaders = 0x4, Ack = 0x1;
    public const ushort MaxConcurrentStreams = 0x3;

    private static readonly byte[] Preface = Encoding.ASCII.GetBytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    private RawHttp2Connection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public sealed record Frame(byte Type, byte Flags, int StreamId, byte[] Payload);

    public static async Task<RawHttp2Connection> ConnectAsync(Uri address, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(address.Host, address.Port, ct);
        return new RawHttp2Connection(socket);
    }

    /// <summary>The client preface and an empty SETTINGS frame: what opens every HTTP/2 connection.</summary>
    public async Task SendPrefaceAsync(CancellationToken ct)
    {
        await _stream.WriteAsync(Preface, ct);
        await SendFrameAsync(Settings, 0, 0, [], ct);
    }

    public async Task SendFrameAsync(byte type, byte flags, int streamId, byte[] payload, CancellationToken ct)
    {
        var header = new byte[9];
        header[0] = (byte)(payload.Length >> 16);
        header[1] = (byte)(payload.Length >> 8);
        header[2] = (byte)payload.Length;
        header[3] = type;
        header[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(5), streamId & int.MaxValue);
        await _stream.WriteAsync(header, ct);
        await _stream.WriteAsync(payload, ct);
        await _stream.FlushAsync(ct);
    }

    /// <summary>The next frame from the server; null when it closed (or reset) the connection.</summary>
    public async Task<Frame?> ReadFrameAsync(CancellationToken ct)
    {
        try
        {
            var header = new byte[9];
            await _stream.ReadExactlyAsync(header, ct);
            int length = (header[0] << 16) | (header[1] << 8) | header[2];
            var payload = new byte[length];
            await _stream.ReadExactlyAsync(payload, ct);
            return new Frame(header[3], header[4], BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue, payload);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or SocketException)
        {
            return null;
        }
    }

    /// <summary>Reads frames until the server closes the connection; the frames it sent before.</summary>
    public async Task<List<Frame>> ReadUntilClosedAsync(CancellationToken ct)
    {
        var frames = new List<Frame>();
        while (await ReadFrameAsync(ct) is { } frame)
        {
            frames.Add(frame);
        }

        return frames;
    }

    /// <summary>
    /// An HPACK header block of literal fields (no indexing, no Huffman): valid for any decoder,
    /// and the bytes are plain enough to cut in half.
    /// </summary>
    public static byte[] HeaderBlock(params (string Name, string Value)[] fields)
    {
        var block = new List<byte>();
        foreach (var (name, value) in fields)
        {
            block.Add(0x00);
            AddString(block, name);
            AddString(block, value);
        }

        return [.. block];
    }

    private static void AddString(List<byte> block, string text)
    {
        byte[] bytes = Encoding.ASCII.GetBytes(text);
        if (bytes.Length >= 127)
        {
            throw new ArgumentException("a test header is short", nameof(text));
        }

        block.Add((byte)bytes.Length);
        block.AddRange(bytes);
    }

    /// <summary>A SETTINGS frame's value for <paramref name="id"/>, or null when it does not carry one.</summary>
    public static uint? SettingOf(Frame settings, ushort id)
    {
        for (int i = 0; i + 6 <= settings.Payload.Length; i += 6)
        {
            if (BinaryPrimitives.ReadUInt16BigEndian(settings.Payload.AsSpan(i)) == id)
            {
                return BinaryPrimitives.ReadUInt32BigEndian(settings.Payload.AsSpan(i + 2));
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync() => await _stream.DisposeAsync();
}

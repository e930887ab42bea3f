using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DistClip.Collectives.Transport;
using Grpc.Core;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// The server side of one <c>CollectiveLink.Open</c> call on its own h2c connection: what Kestrel and
/// Grpc.AspNetCore do for the call, minus their copies. Kestrel copies every received byte three
/// times (transport pipe → connection pipe → request-body pipe → the deserializer's buffer); here a
/// chunk's payload goes from the socket straight into the pooled buffer the ring algorithm reads,
/// and the message around it is parsed as it streams by. One stream per connection; request
/// headers are HPACK-decoded and admitted by <see cref="LinkAcceptor"/> exactly as the Kestrel
/// service does, and the call ends with gRPC trailers. Frames are pulled only as the link's reader
/// asks for them, so a full queue stops the socket and TCP and HTTP/2 flow control push back.
/// </summary>
internal sealed partial class Http2LinkConnection : IAsyncStreamReader<RingFrame>
{
    private const int MaxHeaderBlock = 64 << 10;
    private const int DirectReadThreshold = 4096;
    private const int SmallReadAhead = 128;

    private readonly Socket _socket;
    private readonly GrpcTransportOptions _options;
    private readonly int _maxMessageBytes;
    private readonly FrameInput _input;
    private readonly HpackDecoder _decoder = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private int _streamId;
    private int _dataRemaining;   // payload bytes left in the current DATA frame
    private int _paddingRemaining; // padding bytes left after them
    private bool _endAfterFrame;
    private bool _streamEnded;
    private long _unacknowledged;
    private bool _headersSent;
    private RingFrame? _current;

    public Http2LinkConnection(Socket socket, GrpcTransportOptions options)
    {
        _socket = socket;
        _options = options;
        _maxMessageBytes = FrameMarshaller.MaxFrameBytes(CollectiveLimits.MaxChunkBytes);
        Peer = socket.RemoteEndPoint is IPEndPoint remote
            ? $"{(remote.AddressFamily == AddressFamily.InterNetworkV6 ? "ipv6" : "ipv4")}:{remote}"
            : "unknown";
        _input = new FrameInput(socket, MaxHeaderBlock + Http2Frames.HeaderLength, Peer);
    }

    /// <summary>Who is calling, as gRPC's <c>ServerCallContext.Peer</c> writes it.</summary>
    public string Peer { get; }

    public RingFrame Current => _current ?? throw new InvalidOperationException("MoveNext has not returned a frame.");

    /// <summary>Serves the call from the preface to the trailers, then closes the connection.</summary>
    public async Task RunAsync(LinkAcceptor acceptor, CancellationToken stopping)
    {
        try
        {
            Dictionary<string, string> headers;
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(stopping))
            {
                // A connection that never gets to its request headers is dropped after the connect timeout.
                handshake.CancelAfter(_options.ConnectTimeout);
                headers = await HandshakeAsync(handshake.Token).ConfigureAwait(false);
            }

            var (status, detail) = await ServeAsync(acceptor, headers, stopping).ConfigureAwait(false);
            await SendTrailersAsync(status, detail).ConfigureAwait(false);
            await LingerAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The peer is gone or spoke something else than h2c gRPC: nothing to answer. (A link that
            // was admitted has already told its group, through the reader's failure.)
            Failure = ex;
        }
        finally
        {
            _socket.Dispose();
        }
    }

    /// <summary>Why the connection ended early, if it did (for diagnostics and tests).</summary>
    public Exception? Failure { get; private set; }

    /// <summary>Aborts the connection (the endpoint is stopping).</summary>
    public void Abort() => _socket.Dispose();

    private async Task<(StatusCode Status, string Detail)> ServeAsync(
        LinkAcceptor acceptor, Dictionary<string, string> headers, CancellationToken stopping)
    {
        string path = headers.GetValueOrDefault(":path", string.Empty);
        if (headers.GetValueOrDefault(":method") != "POST" || path != LinkMethods.ServerOpen.FullName)
        {
            return (StatusCode.Unimplemented, $"This endpoint serves only POST {LinkMethods.ServerOpen.FullName}, not {path}.");
        }

        if (!headers.GetValueOrDefault("content-type", string.Empty).StartsWith("application/grpc", StringComparison.Ordinal))
        {
            return (StatusCode.Internal, $"Content-Type '{headers.GetValueOrDefault("content-type")}' is not gRPC.");
        }

        var request = new LinkRequest(
            headers.GetValueOrDefault(LinkHeaders.Secret),
            headers.GetValueOrDefault(LinkHeaders.Generation),
            headers.GetValueOrDefault(LinkHeaders.Rank),
            headers.GetValueOrDefault(LinkHeaders.WorldSize),
            Peer);
        try
        {
            await acceptor.ServeAsync(request, this, SendResponseHeadersAsync, stopping).ConfigureAwait(false);
            return (StatusCode.OK, string.Empty);
        }
        catch (LinkRefusedException ex)
        {
            return (CollectiveLinkService.ToStatus(ex.Reason), ex.Message);
        }
        catch (LinkClosedException ex)
        {
            return (StatusCode.Aborted, ex.Message);
        }
    }

    /// <summary>Preface and SETTINGS both ways, then frames up to the call's request headers.</summary>
    private async Task<Dictionary<string, string>> HandshakeAsync(CancellationToken cancellationToken)
    {
        await _input.FillAsync(Http2Frames.Preface.Length, Http2Frames.Preface.Length, cancellationToken).ConfigureAwait(false);
        if (!_input.Peek(Http2Frames.Preface.Length).SequenceEqual(Http2Frames.Preface))
        {
            throw new InvalidDataException("Not an HTTP/2 connection preface.");
        }

        _input.Skip(Http2Frames.Preface.Length);
        var greeting = new List<byte>();
        greeting.AddRange(Http2Frames.SettingsFrame(
            (Http2Frames.SettingMaxConcurrentStreams, 1),
            (Http2Frames.SettingInitialWindowSize, (uint)_options.StreamWindowBytes),
            (Http2Frames.SettingMaxFrameSize, (uint)_options.MaxFrameBytes)));
        if (_options.ConnectionWindowBytes > Http2Frames.DefaultWindow)
        {
            greeting.AddRange(Http2Frames.WindowUpdateFrame(0, (uint)(_options.ConnectionWindowBytes - Http2Frames.DefaultWindow)));
        }

        await WriteAsync(greeting.ToArray()).ConfigureAwait(false);

        List<byte>? block = null;
        while (true)
        {
            var (_, type, flags, stream, payload) = await _input.ReadFrameAsync(MaxHeaderBlock, SmallReadAhead, cancellationToken)
                .ConfigureAwait(false);
            if (type == Http2Frames.Headers && block is null)
            {
                if (stream == 0 || (stream & 1) == 0)
                {
                    throw new InvalidDataException($"HEADERS on stream {stream}.");
                }

                _streamId = stream;
                _endAfterFrame = (flags & Http2Frames.EndStreamFlag) != 0;
                block = [.. Http2Frames.HeaderFragment(payload.Span, flags)];
            }
            else if (type == Http2Frames.Continuation && block is not null && stream == _streamId)
            {
                block.AddRange(payload.Span);
            }
            else if (block is not null)
            {
                throw new InvalidDataException($"A frame of type {type} inside a header block.");
            }
            else
            {
                await OnControlFrameAsync(type, flags, stream, payload).ConfigureAwait(false);
                continue;
            }

            if (block.Count > MaxHeaderBlock)
            {
                throw new InvalidDataException($"A header block over {MaxHeaderBlock} bytes.");
            }

            if ((flags & Http2Frames.EndHeadersFlag) != 0)
            {
                _streamEnded = _endAfterFrame;
                _endAfterFrame = false;
                var headers = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var (name, value) in _decoder.Decode(block.ToArray()))
                {
                    headers.TryAdd(name, value);
                }

                return headers;
            }
        }
    }

    /// <summary>SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE, PRIORITY.</summary>
    private async ValueTask OnControlFrameAsync(byte type, byte flags, int stream, ReadOnlyMemory<byte> payload)
    {
        int length = payload.Length;
        switch (type)
        {
            case Http2Frames.Settings when (flags & Http2Frames.AckFlag) == 0:
                Expect(length % 6 == 0, "SETTINGS", length);
                // This side sends no DATA, so the client's windows and frame size never matter.
                await WriteAsync(Http2Frames.Frame(Http2Frames.Settings, Http2Frames.AckFlag, 0, default)).ConfigureAwait(false);
                break;
            case Http2Frames.Ping when (flags & Http2Frames.AckFlag) == 0:
                Expect(length == 8, "PING", length);
                await WriteAsync(Http2Frames.Frame(Http2Frames.Ping, Http2Frames.AckFlag, 0, payload.Span)).ConfigureAwait(false);
                break;
            case Http2Frames.RstStream when stream == _streamId && _streamId != 0:
                Expect(length == 4, "RST_STREAM", length);
                throw new IOException($"{Peer} reset the stream (HTTP/2 error {BinaryPrimitives.ReadUInt32BigEndian(payload.Span)}).");
            case Http2Frames.GoAway:
                Expect(length >= 8, "GOAWAY", length);
                uint code = BinaryPrimitives.ReadUInt32BigEndian(payload.Span[4..]);
                if (code != Http2Frames.NoError)
                {
                    throw new IOException($"{Peer} closed the connection (GOAWAY, HTTP/2 error {code}).");
                }

                break;
            case Http2Frames.Headers or Http2Frames.Continuation:
                // SETTINGS_MAX_CONCURRENT_STREAMS is 1: a second call on this connection is a protocol error.
                throw new InvalidDataException($"{Peer} opened a second stream ({stream}) on a link connection.");
            case Http2Frames.PushPromise:
                throw new InvalidDataException("A client sent PUSH_PROMISE.");
        }
    }

    private static void Expect(bool valid, string frame, int length)
    {
        if (!valid)
        {
            throw new InvalidDataException($"A {frame} frame of {length} bytes.");
        }
    }

    private Task SendResponseHeadersAsync()
    {
        var block = ResponseStart();
        HpackEncoder.WriteLiteral(block, LinkHeaders.Accepted, "1");
        _headersSent = true;
        return WriteAsync(Http2Frames.Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag, _streamId, block.ToArray()));
    }

    /// <summary>The call's end: trailers (or a trailers-only response), then RST_STREAM(NO_ERROR) if the client is still sending.</summary>
    private async Task SendTrailersAsync(StatusCode status, string detail)
    {
        var block = _headersSent ? [] : ResponseStart();

        HpackEncoder.WriteLiteral(block, "grpc-status", ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (detail.Length > 0)
        {
            HpackEncoder.WriteLiteral(block, "grpc-message", PercentEncode(detail));
        }

        var frames = new List<byte>(Http2Frames.Frame(
            Http2Frames.Headers, Http2Frames.EndHeadersFlag | Http2Frames.EndStreamFlag, _streamId, block.ToArray()));
        if (!_streamEnded)
        {
            frames.AddRange(Http2Frames.ErrorFrame(Http2Frames.RstStream, _streamId, Http2Frames.NoError));
        }

        await WriteAsync(frames.ToArray()).ConfigureAwait(false);
    }

    /// <summary>A gRPC response's header block up to its own fields: <c>:status 200</c> and the content type.</summary>
    private static List<byte> ResponseStart()
    {
        var block = new List<byte>();
        HpackEncoder.WriteLiteral(block, ":status", "200");
        HpackEncoder.WriteLiteral(block, "content-type", "application/grpc");
        return block;
    }

    /// <summary>
    /// Half-closes and reads until the client closes (bounded), so that the trailers are read before
    /// the connection goes: closing with unread bytes would reset it and could lose them.
    /// </summary>
    private async Task LingerAsync()
    {
        _socket.Shutdown(SocketShutdown.Send);
        using var linger = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var sink = new byte[64 << 10];
        while (await _socket.ReceiveAsync(sink, SocketFlags.None, linger.Token).ConfigureAwait(false) > 0)
        {
        }
    }

    /// <summary>gRPC's percent-encoding of grpc-message: printable ASCII except '%' stays, the rest is %XX of UTF-8.</summary>
    private static string PercentEncode(string text)
    {
        var encoded = new StringBuilder(text.Length);
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%')
            {
                encoded.Append((char)b);
            }
            else
            {
                encoded.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return encoded.ToString();
    }

    private async Task WriteAsync(ReadOnlyMemory<byte> bytes)
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            while (!bytes.IsEmpty)
            {
                int n = await _socket.SendAsync(bytes, SocketFlags.None).ConfigureAwait(false);
                bytes = bytes[n..];
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }
}

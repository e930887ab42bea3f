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
    private const int DirectReadThreshold = 4096;
    private const int SmallReadAhead = 128;

    // This end sends only SETTINGS, WINDOW_UPDATEs, control replies and trailers: a small kernel
    // send buffer costs nothing and bounds what a peer that never reads can leave queued here.
    private const int SendBufferBytes = 64 << 10;

    private readonly Socket _socket;
    private readonly LinkWire _wire;
    private readonly GrpcTransportOptions _options;
    private readonly TimeProvider _time;
    private readonly int _maxMessageBytes;
    private readonly int _maxHeaderBlock;
    private readonly FrameInput _input;
    private readonly HpackDecoder _decoder;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private Action? _leaveUnauthenticated;
    private int _controlFrames;   // SETTINGS and PINGs answered before the request headers
    private long _sendConnectionWindow = Http2Frames.DefaultWindow; // the peer's windows for DATA we would send (we send none,
    private long _sendStreamWindow = Http2Frames.DefaultWindow;     // but an overflowing WINDOW_UPDATE is an error all the same)
    private long _peerInitialWindow = Http2Frames.DefaultWindow;
    private int _streamId;
    private int _dataRemaining;   // payload bytes left in the current DATA frame
    private int _paddingRemaining; // padding bytes left after them
    private bool _endAfterFrame;
    private bool _streamEnded;
    private long _unacknowledged;
    private bool _headersSent;
    private RingFrame? _current;

    /// <param name="leaveUnauthenticated">
    /// Called once, when the call is admitted or the connection ends, whichever comes first: the
    /// listener counts the connections in between against <see cref="GrpcTransportOptions.MaxUnauthenticatedConnections"/>.
    /// </param>
    public Http2LinkConnection(Socket socket, GrpcTransportOptions options, TimeProvider? time = null, Action? leaveUnauthenticated = null)
    {
        _socket = socket;
        _wire = new LinkWire(socket);
        _options = options;
        _time = time ?? TimeProvider.System;
        _leaveUnauthenticated = leaveUnauthenticated;
        _maxMessageBytes = FrameMarshaller.MaxFrameBytes(CollectiveLimits.MaxChunkBytes);
        _maxHeaderBlock = options.MaxHeaderBytes;
        _decoder = new HpackDecoder(maxListBytes: options.MaxHeaderBytes);
        Peer = socket.RemoteEndPoint is IPEndPoint remote
            ? $"{(remote.AddressFamily == AddressFamily.InterNetworkV6 ? "ipv6" : "ipv4")}:{remote}"
            : "unknown";
        socket.SendBufferSize = SendBufferBytes;
        _input = new FrameInput(_wire, _maxHeaderBlock + Http2Frames.HeaderLength, Peer);
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
            using (var deadline = new CancellationTokenSource(_options.HandshakeTimeout, _time))
            using (deadline.Token.Register(Abort))
            {
                // One deadline over the whole handshake, writes included: it closes the socket, so a
                // peer that stops reading cannot park this side in a send that never completes.
                // TLS, when on, is part of it: a stranger's handshake is one more unauthenticated
                // connection, held no longer than the rest (mutual TLS refuses it before HTTP/2).
                if (_options.Tls is { } tls)
                {
                    await _wire.AuthenticateAsServerAsync(tls.ServerOptions(), stopping).ConfigureAwait(false);
                }

                headers = await HandshakeAsync(stopping).ConfigureAwait(false);
            }

            var (status, detail) = await ServeAsync(acceptor, headers, stopping).ConfigureAwait(false);
            using (var deadline = new CancellationTokenSource(_options.HandshakeTimeout, _time))
            using (deadline.Token.Register(Abort))
            {
                // Likewise the goodbye: the trailers and the wait for the client to close.
                await SendTrailersAsync(status, detail).ConfigureAwait(false);
                await LingerAsync(deadline.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            // The peer is gone or spoke something else than h2c gRPC. A protocol error is named in a
            // GOAWAY if it can be sent at once; nothing else is answered. (A link that was admitted
            // has already told its group, through the reader's failure.)
            Failure = ex;
            if (ex is Http2ConnectionException error)
            {
                TrySendGoAway(error.Code);
            }
        }
        finally
        {
            _wire.Dispose();
            LeaveUnauthenticated();
        }
    }

    private void LeaveUnauthenticated() => Interlocked.Exchange(ref _leaveUnauthenticated, null)?.Invoke();

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
            headers.GetValueOrDefault(LinkHeaders.RankToken),
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
            var (_, type, flags, stream, payload) = await _input.ReadFrameAsync(_maxHeaderBlock, SmallReadAhead, cancellationToken)
                .ConfigureAwait(false);
            if (type == Http2Frames.Headers && block is null)
            {
                if (stream == 0 || (stream & 1) == 0)
                {
                    throw new Http2ConnectionException(Http2Frames.ProtocolError, $"HEADERS on stream {stream}.");
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
                throw new Http2ConnectionException(Http2Frames.ProtocolError, $"A frame of type {type} inside a header block.");
            }
            else
            {
                if (type is Http2Frames.Settings or Http2Frames.Ping && (flags & Http2Frames.AckFlag) == 0
                    && ++_controlFrames > _options.MaxHandshakeControlFrames)
                {
                    // Each is answered: a peer that sends them without end (and never reads) is flooding.
                    throw new Http2ConnectionException(
                        Http2Frames.EnhanceYourCalm, $"{Peer} sent more than {_options.MaxHandshakeControlFrames} SETTINGS and PINGs before its request.");
                }

                await OnControlFrameAsync(type, flags, stream, payload, cancellationToken).ConfigureAwait(false);
                continue;
            }

            // CONTINUATION frames add up: the block as a whole is bounded (RFC 9113 §10.5.1).
            if (block.Count > _maxHeaderBlock)
            {
                throw new Http2ConnectionException(Http2Frames.ProtocolError, $"A header block over {_maxHeaderBlock} bytes.");
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

    private Task SendResponseHeadersAsync()
    {
        LeaveUnauthenticated(); // the acceptor has checked the secret
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
    private async Task LingerAsync(CancellationToken deadline)
    {
        await _wire.ShutdownSendAsync(deadline).ConfigureAwait(false);
        using var linger = CancellationTokenSource.CreateLinkedTokenSource(deadline);
        linger.CancelAfter(TimeSpan.FromSeconds(5));
        var sink = new byte[64 << 10];
        while (await _wire.ReceiveAsync(sink, linger.Token).ConfigureAwait(false) > 0)
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
}

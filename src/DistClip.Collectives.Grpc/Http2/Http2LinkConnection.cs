using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DistClip.Collectives.Transport;
using Grpc.Core;
using Google.Protobuf;
using ProtoHeader = DistClip.Collectives.Grpc.V1.FrameHeader;

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
internal sealed class Http2LinkConnection : IAsyncStreamReader<RingFrame>
{
    private const int MaxHeaderBlock = 64 << 10;
    private const int DirectReadThreshold = 4096;
    private const int SmallReadAhead = 128;

    private readonly Socket _socket;
    private readonly GrpcTransportOptions _options;
    private readonly int _maxMessageBytes;
    private readonly byte[] _buffer = new byte[MaxHeaderBlock + Http2Frames.HeaderLength];
    private readonly HpackDecoder _decoder = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private int _start;
    private int _end;
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

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        _current = null; // the reader owns (and disposes) what it was given
        var prefix = new byte[5];
        int first = await ReadDataAsync(prefix, cancellationToken).ConfigureAwait(false);
        if (first == 0)
        {
            return false;
        }

        await ReadExactAsync(prefix.AsMemory(first), cancellationToken).ConfigureAwait(false);
        if (prefix[0] != 0)
        {
            throw new InvalidDataException("A compressed collective frame (this link never compresses).");
        }

        uint messageLength = BinaryPrimitives.ReadUInt32BigEndian(prefix.AsSpan(1));
        if (messageLength > _maxMessageBytes)
        {
            throw new InvalidDataException($"A collective frame of {messageLength} bytes exceeds the limit of {_maxMessageBytes}.");
        }

        _current = await ReadMessageAsync((int)messageLength, cancellationToken).ConfigureAwait(false);
        return true;
    }

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
        await FillAsync(Http2Frames.Preface.Length, Http2Frames.Preface.Length, cancellationToken).ConfigureAwait(false);
        if (!_buffer.AsSpan(_start, Http2Frames.Preface.Length).SequenceEqual(Http2Frames.Preface))
        {
            throw new InvalidDataException("Not an HTTP/2 connection preface.");
        }

        _start += Http2Frames.Preface.Length;
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
            var (length, type, flags, stream) = await ReadControlFrameAsync(cancellationToken).ConfigureAwait(false);
            var payload = _buffer.AsSpan(_start - length, length);
            if (type == Http2Frames.Headers && block is null)
            {
                if (stream == 0 || (stream & 1) == 0)
                {
                    throw new InvalidDataException($"HEADERS on stream {stream}.");
                }

                _streamId = stream;
                _endAfterFrame = (flags & Http2Frames.EndStreamFlag) != 0;
                block = [.. Http2Frames.HeaderFragment(payload, flags)];
            }
            else if (type == Http2Frames.Continuation && block is not null && stream == _streamId)
            {
                block.AddRange(payload);
            }
            else if (block is not null)
            {
                throw new InvalidDataException($"A frame of type {type} inside a header block.");
            }
            else
            {
                await OnControlFrameAsync(type, flags, stream, length).ConfigureAwait(false);
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

    /// <summary>Reads a whole non-DATA frame into the buffer (its payload ends at <c>_start</c>).</summary>
    private async Task<(int Length, byte Type, byte Flags, int Stream)> ReadControlFrameAsync(CancellationToken cancellationToken)
    {
        await FillAsync(Http2Frames.HeaderLength, SmallReadAhead, cancellationToken).ConfigureAwait(false);
        var (length, type, flags, stream) = Http2Frames.ReadHeader(_buffer.AsSpan(_start));
        if (length > MaxHeaderBlock)
        {
            throw new InvalidDataException($"A frame of type {type} and {length} bytes before the request headers.");
        }

        await FillAsync(Http2Frames.HeaderLength + length, Http2Frames.HeaderLength + length, cancellationToken).ConfigureAwait(false);
        _start += Http2Frames.HeaderLength + length;
        return (length, type, flags, stream);
    }

    /// <summary>SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE, PRIORITY; the payload ends at <c>_start</c>.</summary>
    private async ValueTask OnControlFrameAsync(byte type, byte flags, int stream, int length)
    {
        var payload = _buffer.AsMemory(_start - length, length);
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

    /// <summary>Reads up to <paramref name="destination"/>.Length bytes of the stream's DATA; 0 at the end of the stream.</summary>
    private async ValueTask<int> ReadDataAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_dataRemaining > 0)
            {
                int n = Math.Min(destination.Length, _dataRemaining);
                if (_end > _start)
                {
                    n = Math.Min(n, _end - _start);
                    _buffer.AsSpan(_start, n).CopyTo(destination.Span);
                    _start += n;
                }
                else if (n >= DirectReadThreshold)
                {
                    // The bulk path: straight from the socket into the caller's buffer.
                    n = await _socket.ReceiveAsync(destination[..n], SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        throw new IOException($"{Peer} closed the connection in the middle of a DATA frame.");
                    }
                }
                else
                {
                    await FillAsync(1, Math.Min(_dataRemaining + _paddingRemaining + Http2Frames.HeaderLength, SmallReadAhead), cancellationToken)
                        .ConfigureAwait(false);
                    continue;
                }

                _dataRemaining -= n;
                await AcknowledgeAsync(n, endOfFrame: _dataRemaining == 0).ConfigureAwait(false);
                return n;
            }

            if (_paddingRemaining > 0)
            {
                await FillAsync(1, _paddingRemaining, cancellationToken).ConfigureAwait(false);
                int skip = Math.Min(_paddingRemaining, _end - _start);
                _start += skip;
                _paddingRemaining -= skip;
                await AcknowledgeAsync(skip, endOfFrame: _paddingRemaining == 0).ConfigureAwait(false);
                continue;
            }

            if (_endAfterFrame)
            {
                _streamEnded = true;
                _endAfterFrame = false;
            }

            if (_streamEnded)
            {
                return 0;
            }

            await FillAsync(Http2Frames.HeaderLength, SmallReadAhead, cancellationToken).ConfigureAwait(false);
            var (length, type, flags, stream) = Http2Frames.ReadHeader(_buffer.AsSpan(_start));
            if (length > _options.MaxFrameBytes)
            {
                await WriteAsync(Http2Frames.ErrorFrame(Http2Frames.GoAway, 0, Http2Frames.FrameSizeError, _streamId)).ConfigureAwait(false);
                throw new InvalidDataException($"{Peer} sent a frame of {length} bytes; this endpoint advertised {_options.MaxFrameBytes}.");
            }

            if (type == Http2Frames.Data && stream == _streamId)
            {
                _start += Http2Frames.HeaderLength;
                int padding = 0;
                if ((flags & Http2Frames.PaddedFlag) != 0)
                {
                    await FillAsync(1, 1, cancellationToken).ConfigureAwait(false);
                    padding = _buffer[_start++];
                    await AcknowledgeAsync(1, endOfFrame: false).ConfigureAwait(false);
                    length--;
                }

                if (padding > length)
                {
                    throw new InvalidDataException("DATA padding longer than the frame.");
                }

                _dataRemaining = length - padding;
                _paddingRemaining = padding;
                _endAfterFrame = (flags & Http2Frames.EndStreamFlag) != 0;
                continue;
            }

            if (type == Http2Frames.Headers && stream == _streamId)
            {
                // Request trailers (gRPC clients send none): the stream ends here.
                await ReadControlFrameAsync(cancellationToken).ConfigureAwait(false);
                _streamEnded = true;
                continue;
            }

            await ReadControlFrameAsync(cancellationToken).ConfigureAwait(false);
            await OnControlFrameAsync(type, flags, stream, length).ConfigureAwait(false);
        }
    }

    private async ValueTask ReadExactAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        while (!destination.IsEmpty)
        {
            int n = await ReadDataAsync(destination, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new InvalidDataException($"{Peer} ended the stream in the middle of a message.");
            }

            destination = destination[n..];
        }
    }

    /// <summary>
    /// Parses one <c>CollectiveFrame</c> as it streams in: the header field through a small buffer,
    /// the payload straight into a pooled buffer. Fields may come in any order; unknown ones are skipped.
    /// </summary>
    private async ValueTask<RingFrame> ReadMessageAsync(int messageLength, CancellationToken cancellationToken)
    {
        ProtoHeader? header = null;
        byte[]? payload = null;
        int payloadLength = 0;
        int remaining = messageLength;
        var small = new byte[10];
        try
        {
            while (remaining > 0)
            {
                (uint tag, int tagBytes) = await ReadVarintAsync(small, remaining, cancellationToken).ConfigureAwait(false);
                remaining -= tagBytes;
                if ((tag & 7) == 0)
                {
                    (_, int skipped) = await ReadVarintAsync(small, remaining, cancellationToken).ConfigureAwait(false);
                    remaining -= skipped;
                    continue;
                }

                if ((tag & 7) != 2)
                {
                    throw new InvalidDataException($"Unexpected wire type {tag & 7} in a collective frame.");
                }

                (uint size, int sizeBytes) = await ReadVarintAsync(small, remaining, cancellationToken).ConfigureAwait(false);
                remaining -= sizeBytes;
                if (size > remaining)
                {
                    throw new InvalidDataException($"Field {tag >> 3} claims {size} bytes; {remaining} remain.");
                }

                int length = (int)size;
                remaining -= length;
                if (tag >> 3 == 2 && payload is null)
                {
                    payload = RingFrame.Rent(length);
                    payloadLength = length;
                    if (length > 0)
                    {
                        await ReadExactAsync(payload.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                    }

                    continue;
                }

                if (length > 4096)
                {
                    throw new InvalidDataException($"Field {tag >> 3} of {length} bytes in a collective frame.");
                }

                var field = new byte[length];
                await ReadExactAsync(field, cancellationToken).ConfigureAwait(false);
                if (tag >> 3 == 1)
                {
                    header = ProtoHeader.Parser.ParseFrom(field);
                }
            }
        }
        catch (InvalidProtocolBufferException ex)
        {
            FrameMarshaller.Release(payload);
            throw new InvalidDataException("Malformed collective frame header.", ex);
        }
        catch
        {
            FrameMarshaller.Release(payload);
            throw;
        }

        return FrameMarshaller.ToFrame(header, payload, payloadLength);
    }

    private async ValueTask<(uint Value, int Bytes)> ReadVarintAsync(byte[] scratch, int limit, CancellationToken cancellationToken)
    {
        uint value = 0;
        for (int i = 0; i < 5 && i < limit; i++)
        {
            await ReadExactAsync(scratch.AsMemory(0, 1), cancellationToken).ConfigureAwait(false);
            value |= (uint)(scratch[0] & 0x7F) << (7 * i);
            if (scratch[0] < 0x80)
            {
                return (value, i + 1);
            }
        }

        throw new InvalidDataException("A truncated or overlong varint in a collective frame.");
    }

    /// <summary>Gives consumed DATA bytes back to the client's windows, in batches.</summary>
    private async ValueTask AcknowledgeAsync(int bytes, bool endOfFrame)
    {
        _unacknowledged += bytes;
        long threshold = Math.Max(Http2Frames.DefaultFrameSize, _options.StreamWindowBytes / 4);
        if (_unacknowledged >= threshold || (endOfFrame && _unacknowledged >= Http2Frames.DefaultFrameSize))
        {
            uint increment = (uint)_unacknowledged;
            _unacknowledged = 0;
            var updates = new byte[2 * (Http2Frames.HeaderLength + 4)];
            Http2Frames.WindowUpdateFrame(0, increment).CopyTo(updates, 0);
            Http2Frames.WindowUpdateFrame(_streamId, increment).CopyTo(updates, Http2Frames.HeaderLength + 4);
            await WriteAsync(updates).ConfigureAwait(false);
        }
    }

    private Task SendResponseHeadersAsync()
    {
        var block = new List<byte>();
        HpackEncoder.WriteLiteral(block, ":status", "200");
        HpackEncoder.WriteLiteral(block, "content-type", "application/grpc");
        HpackEncoder.WriteLiteral(block, LinkHeaders.Accepted, "1");
        _headersSent = true;
        return WriteAsync(Http2Frames.Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag, _streamId, block.ToArray()));
    }

    /// <summary>The call's end: trailers (or a trailers-only response), then RST_STREAM(NO_ERROR) if the client is still sending.</summary>
    private async Task SendTrailersAsync(StatusCode status, string detail)
    {
        var block = new List<byte>();
        if (!_headersSent)
        {
            HpackEncoder.WriteLiteral(block, ":status", "200");
            HpackEncoder.WriteLiteral(block, "content-type", "application/grpc");
        }

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

    /// <summary>Ensures <paramref name="needed"/> buffered bytes, reading at most up to <paramref name="readAhead"/> of them.</summary>
    private async ValueTask FillAsync(int needed, int readAhead, CancellationToken cancellationToken)
    {
        if (_end - _start >= needed)
        {
            return;
        }

        int want = Math.Max(needed, readAhead);
        if (_buffer.Length - _start < want)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        while (_end - _start < needed)
        {
            int room = Math.Min(_buffer.Length - _end, want - (_end - _start));
            int n = await _socket.ReceiveAsync(_buffer.AsMemory(_end, room), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"{Peer} closed the connection.");
            }

            _end += n;
        }
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

using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using Grpc.Core;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>The call's incoming side: frames from the server, its headers and trailers, and the flow-control updates that let sends go on.</summary>
internal sealed partial class Http2LinkCall
{
    private async Task ReadLoopAsync()
    {
        var input = new FrameInput(_wire, 64 << 10, _peer);
        List<byte>? headerBlock = null;
        bool blockEndsStream = false;
        try
        {
            while (true)
            {
                // This side advertised the default frame size; the server sends only small frames.
                var (length, type, flags, stream, payload) = await input.ReadFrameAsync(DefaultFrameSize, readAhead: 64 << 10, CancellationToken.None)
                    .ConfigureAwait(false);
                if (headerBlock is not null && type != Http2Frames.Continuation)
                {
                    throw new Http2ConnectionException(Http2Frames.ProtocolError, $"{_peer} interrupted a header block with a frame of type {type}.");
                }

                switch (type)
                {
                    case Http2Frames.Headers when stream == StreamId:
                        headerBlock = [.. Http2Frames.HeaderFragment(payload.Span, flags)];
                        blockEndsStream = (flags & Http2Frames.EndStreamFlag) != 0;
                        break;
                    case Http2Frames.Continuation when headerBlock is not null && stream == StreamId:
                        headerBlock.AddRange(payload.Span);
                        break;
                    case Http2Frames.Headers or Http2Frames.Continuation:
                        throw new Http2ConnectionException(Http2Frames.ProtocolError, $"{_peer} sent a header fragment of type {type} on stream {stream} out of place.");
                    case Http2Frames.Data when stream == StreamId:
                        await OnDataAsync(length, flags, payload).ConfigureAwait(false);
                        break;
                    case Http2Frames.Data:
                        throw new Http2ConnectionException(Http2Frames.ProtocolError, $"{_peer} sent DATA on stream {stream}, which is not open.");
                    case Http2Frames.RstStream:
                        Expect(length == 4 && stream != 0, "RST_STREAM", length);
                        if (stream == StreamId)
                        {
                            uint code = BinaryPrimitives.ReadUInt32BigEndian(payload.Span);
                            Fail(new RpcException(new Status(
                                code == Http2Frames.Cancel ? StatusCode.Cancelled : StatusCode.Internal, $"{_peer} reset the stream (HTTP/2 error {code}).")));
                        }

                        break;
                    case Http2Frames.Settings:
                        Expect(stream == 0 && ((flags & Http2Frames.AckFlag) == 0 || length == 0), "SETTINGS", length);
                        if ((flags & Http2Frames.AckFlag) == 0)
                        {
                            OnSettings(payload.Span);
                            await WriteFrameAsync(Http2Frames.Frame(Http2Frames.Settings, Http2Frames.AckFlag, 0, default), CancellationToken.None).ConfigureAwait(false);
                        }

                        break;
                    case Http2Frames.Ping:
                        Expect(stream == 0 && length == 8, "PING", length);
                        if ((flags & Http2Frames.AckFlag) == 0)
                        {
                            // Awaited before the next frame is read: a server that never reads its
                            // replies stops being read, rather than growing a queue here.
                            await WriteFrameAsync(Http2Frames.Frame(Http2Frames.Ping, Http2Frames.AckFlag, 0, payload.Span), CancellationToken.None).ConfigureAwait(false);
                        }

                        break;
                    case Http2Frames.GoAway:
                        Expect(stream == 0 && length >= 8, "GOAWAY", length);
                        OnGoAway(payload.Span);
                        break;
                    case Http2Frames.WindowUpdate:
                        OnWindowUpdate(stream, Http2Frames.ReadWindowIncrement(payload.Span));
                        break;
                    case Http2Frames.Priority:
                        Expect(stream != 0 && length == 5, "PRIORITY", length);
                        break;
                    case Http2Frames.PushPromise:
                        throw new Http2ConnectionException(Http2Frames.ProtocolError, $"{_peer} sent PUSH_PROMISE although push is disabled.");
                }

                // CONTINUATION frames add up: the block as a whole is bounded (RFC 9113 §10.5.1).
                if (headerBlock is not null && headerBlock.Count > _maxHeaderBlock)
                {
                    throw new Http2ConnectionException(Http2Frames.ProtocolError, $"{_peer} sent a header block over {_maxHeaderBlock} bytes.");
                }

                if (headerBlock is not null && (flags & Http2Frames.EndHeadersFlag) != 0 && type is Http2Frames.Headers or Http2Frames.Continuation)
                {
                    OnHeaderBlock(_decoder.Decode(headerBlock.ToArray()), blockEndsStream);
                    headerBlock = null;
                }
            }
        }
        catch (Exception ex)
        {
            string why = ex is InvalidDataException or Http2ConnectionException ? ex.Message : $"the connection to {_peer} was lost ({ex.Message})";
            Fail(new RpcException(new Status(StatusCode.Unavailable, why, ex)));
            if (ex is Http2ConnectionException error)
            {
                TrySendGoAway(error.Code);
            }

            Close();
        }
    }

    /// <summary>A GOAWAY naming the error (RFC 9113 §5.4.1), only if the socket takes it at once: a sender may hold it, or the peer not read.</summary>
    private void TrySendGoAway(uint code)
    {
        if (!_writeLock.Wait(0))
        {
            return;
        }

        try
        {
            _wire.TrySendNow(Http2Frames.ErrorFrame(Http2Frames.GoAway, 0, code));
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static void Expect(bool valid, string frame, int length)
    {
        if (!valid)
        {
            throw new Http2ConnectionException(Http2Frames.FrameSizeError, $"A malformed {frame} frame ({length} bytes).");
        }
    }

    private async ValueTask OnDataAsync(int length, byte flags, ReadOnlyMemory<byte> payload)
    {
        if ((flags & Http2Frames.PaddedFlag) != 0 && (payload.IsEmpty || payload.Span[0] >= payload.Length))
        {
            throw new Http2ConnectionException(Http2Frames.ProtocolError, $"{_peer} sent DATA whose padding is longer than the frame.");
        }

        // The service sends no messages today; give back what arrives so a future one never stalls.
        if (length > 0)
        {
            await WriteFrameAsync(Http2Frames.WindowUpdateFrame(0, (uint)length), CancellationToken.None).ConfigureAwait(false);
            await WriteFrameAsync(Http2Frames.WindowUpdateFrame(StreamId, (uint)length), CancellationToken.None).ConfigureAwait(false);
        }

        if ((flags & Http2Frames.EndStreamFlag) != 0)
        {
            throw new InvalidDataException($"{_peer} ended the response without trailers.");
        }
    }

    private void OnHeaderBlock(List<(string Name, string Value)> fields, bool endStream)
    {
        if (!_headers.Task.IsCompleted)
        {
            string? status = fields.FirstOrDefault(f => f.Name == ":status").Value;
            if (status != "200")
            {
                throw new InvalidDataException($"{_peer} answered HTTP status {status ?? "(none)"}, not a gRPC response.");
            }

            var metadata = new Metadata();
            foreach (var (name, value) in fields)
            {
                if (!name.StartsWith(':') && !name.EndsWith(Metadata.BinaryHeaderSuffix, StringComparison.Ordinal))
                {
                    metadata.Add(name, value);
                }
            }

            _headers.TrySetResult(metadata);
        }
        else if (!endStream)
        {
            throw new InvalidDataException($"{_peer} sent a second header block that does not end the stream.");
        }

        if (endStream)
        {
            string? code = fields.FirstOrDefault(f => f.Name == "grpc-status").Value;
            string message = Uri.UnescapeDataString(fields.FirstOrDefault(f => f.Name == "grpc-message").Value ?? string.Empty);
            if (!int.TryParse(code, NumberStyles.None, CultureInfo.InvariantCulture, out int value))
            {
                Fail(new RpcException(new Status(StatusCode.Internal, $"{_peer} ended the call without a grpc-status.")));
            }
            else if (value == (int)StatusCode.OK)
            {
                _completion.TrySetResult();
                Fail(new RpcException(new Status(StatusCode.OK, "The call has ended.")));
            }
            else
            {
                Fail(new RpcException(new Status((StatusCode)value, message)));
            }
        }
    }

    private void OnSettings(ReadOnlySpan<byte> payload)
    {
        TaskCompletionSource? opened;
        lock (_flow)
        {
            // Values are checked before they are used: MAX_FRAME_SIZE 0 once made this client send
            // empty DATA frames without end.
            Http2Frames.ReadSettings(payload, (id, value) =>
            {
                if (id == Http2Frames.SettingInitialWindowSize)
                {
                    _streamWindow = Http2Frames.Grow(_streamWindow, (long)value - _peerInitialWindow, "stream");
                    _peerInitialWindow = (int)value;
                }
                else if (id == Http2Frames.SettingMaxFrameSize)
                {
                    _maxFrameSize = (int)value;
                }
            });

            opened = _windowOpened;
            _windowOpened = null;
        }

        opened?.TrySetResult();
    }

    private void OnWindowUpdate(int stream, uint increment)
    {
        TaskCompletionSource? opened;
        lock (_flow)
        {
            if (stream == 0)
            {
                _connectionWindow = Http2Frames.Grow(_connectionWindow, increment, "connection");
            }
            else if (stream == StreamId)
            {
                _streamWindow = Http2Frames.Grow(_streamWindow, increment, "stream");
            }

            opened = _windowOpened;
            _windowOpened = null;
        }

        opened?.TrySetResult();
    }

    private void OnGoAway(ReadOnlySpan<byte> payload)
    {
        int lastStream = (int)(BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7FFF_FFFF);
        uint code = BinaryPrimitives.ReadUInt32BigEndian(payload[4..]);
        if (lastStream < StreamId || code != 0)
        {
            Fail(new RpcException(new Status(StatusCode.Unavailable, $"{_peer} is closing the connection (GOAWAY, HTTP/2 error {code}).")));
        }
    }
}

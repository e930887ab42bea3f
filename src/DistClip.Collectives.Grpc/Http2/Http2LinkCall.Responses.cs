using System.Buffers.Binary;
using System.Globalization;
using Grpc.Core;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>The call's incoming side: frames from the server, its headers and trailers, and the flow-control updates that let sends go on.</summary>
internal sealed partial class Http2LinkCall
{
    private async Task ReadLoopAsync()
    {
        var input = new FrameInput(_socket, 64 << 10, _peer);
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
                    throw new InvalidDataException($"{_peer} interrupted a header block with a frame of type {type}.");
                }

                switch (type)
                {
                    case Http2Frames.Headers when stream == StreamId:
                        headerBlock = [.. Http2Frames.HeaderFragment(payload.Span, flags)];
                        blockEndsStream = (flags & Http2Frames.EndStreamFlag) != 0;
                        break;
                    case Http2Frames.Continuation when headerBlock is not null:
                        headerBlock.AddRange(payload.Span);
                        break;
                    case Http2Frames.Data when stream == StreamId:
                        await OnDataAsync(length, flags).ConfigureAwait(false);
                        break;
                    case Http2Frames.RstStream when stream == StreamId:
                        uint code = BinaryPrimitives.ReadUInt32BigEndian(payload.Span);
                        Fail(new RpcException(new Status(
                            code == Http2Frames.Cancel ? StatusCode.Cancelled : StatusCode.Internal, $"{_peer} reset the stream (HTTP/2 error {code}).")));
                        break;
                    case Http2Frames.Settings when (flags & Http2Frames.AckFlag) == 0:
                        OnSettings(payload.Span);
                        await WriteFrameAsync(Http2Frames.Frame(Http2Frames.Settings, Http2Frames.AckFlag, 0, default), CancellationToken.None).ConfigureAwait(false);
                        break;
                    case Http2Frames.Ping when (flags & Http2Frames.AckFlag) == 0:
                        await WriteFrameAsync(Http2Frames.Frame(Http2Frames.Ping, Http2Frames.AckFlag, 0, payload.Span), CancellationToken.None).ConfigureAwait(false);
                        break;
                    case Http2Frames.GoAway:
                        OnGoAway(payload.Span);
                        break;
                    case Http2Frames.WindowUpdate:
                        OnWindowUpdate(stream, BinaryPrimitives.ReadUInt32BigEndian(payload.Span) & 0x7FFF_FFFF);
                        break;
                    case Http2Frames.PushPromise:
                        throw new InvalidDataException($"{_peer} sent PUSH_PROMISE although push is disabled.");
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
            string why = ex is InvalidDataException ? ex.Message : $"the connection to {_peer} was lost ({ex.Message})";
            Fail(new RpcException(new Status(StatusCode.Unavailable, why, ex)));
            Close();
        }
    }

    private async ValueTask OnDataAsync(int length, byte flags)
    {
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
        if (payload.Length % 6 != 0)
        {
            throw new InvalidDataException($"SETTINGS payload of {payload.Length} bytes is not a multiple of 6.");
        }

        TaskCompletionSource? opened;
        lock (_flow)
        {
            for (int at = 0; at < payload.Length; at += 6)
            {
                ushort id = BinaryPrimitives.ReadUInt16BigEndian(payload[at..]);
                uint value = BinaryPrimitives.ReadUInt32BigEndian(payload[(at + 2)..]);
                if (id == Http2Frames.SettingInitialWindowSize)
                {
                    _streamWindow += (long)value - _peerInitialWindow;
                    _peerInitialWindow = (int)value;
                }
                else if (id == Http2Frames.SettingMaxFrameSize)
                {
                    _maxFrameSize = (int)value;
                }
            }

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
                _connectionWindow += increment;
            }
            else if (stream == StreamId)
            {
                _streamWindow += increment;
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

using System.Buffers.Binary;
using DistClip.Collectives.Transport;
using Google.Protobuf;
using ProtoHeader = DistClip.Collectives.Grpc.V1.FrameHeader;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>The call's request stream: DATA frames read as a stream of bytes, parsed into <c>CollectiveFrame</c>s with the payload received in place, and the windows given back.</summary>
internal sealed partial class Http2LinkConnection
{
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

    /// <summary>Reads up to <paramref name="destination"/>.Length bytes of the stream's DATA; 0 at the end of the stream.</summary>
    private async ValueTask<int> ReadDataAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_dataRemaining > 0)
            {
                int n = Math.Min(destination.Length, _dataRemaining);
                if (_input.Buffered > 0)
                {
                    n = _input.Take(destination.Span[..n]);
                }
                else if (n >= DirectReadThreshold)
                {
                    // The bulk path: straight from the socket into the caller's buffer.
                    n = await _input.ReceiveDirectAsync(destination[..n], cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await _input.FillAsync(1, Math.Min(_dataRemaining + _paddingRemaining + Http2Frames.HeaderLength, SmallReadAhead), cancellationToken)
                        .ConfigureAwait(false);
                    continue;
                }

                _dataRemaining -= n;
                await AcknowledgeAsync(n, endOfFrame: _dataRemaining == 0, cancellationToken).ConfigureAwait(false);
                return n;
            }

            if (_paddingRemaining > 0)
            {
                await _input.FillAsync(1, _paddingRemaining, cancellationToken).ConfigureAwait(false);
                int skip = Math.Min(_paddingRemaining, _input.Buffered);
                _input.Skip(skip);
                _paddingRemaining -= skip;
                await AcknowledgeAsync(skip, endOfFrame: _paddingRemaining == 0, cancellationToken).ConfigureAwait(false);
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

            await _input.FillAsync(Http2Frames.HeaderLength, SmallReadAhead, cancellationToken).ConfigureAwait(false);
            var (length, type, flags, stream) = Http2Frames.ReadHeader(_input.Peek(Http2Frames.HeaderLength));
            if (length > _options.MaxFrameBytes)
            {
                throw new Http2ConnectionException(
                    Http2Frames.FrameSizeError, $"{Peer} sent a frame of {length} bytes; this endpoint advertised {_options.MaxFrameBytes}.");
            }

            if (type == Http2Frames.Data && stream == _streamId)
            {
                _input.Skip(Http2Frames.HeaderLength);
                int padding = 0;
                if ((flags & Http2Frames.PaddedFlag) != 0)
                {
                    if (length == 0)
                    {
                        throw new Http2ConnectionException(Http2Frames.FrameSizeError, "A PADDED DATA frame without its pad length.");
                    }

                    await _input.FillAsync(1, 1, cancellationToken).ConfigureAwait(false);
                    padding = _input.Peek(1)[0];
                    _input.Skip(1);
                    await AcknowledgeAsync(1, endOfFrame: false, cancellationToken).ConfigureAwait(false);
                    length--;
                }

                if (padding > length)
                {
                    throw new Http2ConnectionException(Http2Frames.ProtocolError, "DATA padding longer than the frame.");
                }

                _dataRemaining = length - padding;
                _paddingRemaining = padding;
                _endAfterFrame = (flags & Http2Frames.EndStreamFlag) != 0;
                continue;
            }

            var frame = await _input.ReadFrameAsync(_maxHeaderBlock, SmallReadAhead, cancellationToken).ConfigureAwait(false);
            if (type == Http2Frames.Headers && stream == _streamId)
            {
                // Request trailers (gRPC clients send none): the stream ends here.
                _streamEnded = true;
                continue;
            }

            await OnControlFrameAsync(type, flags, stream, frame.Payload, cancellationToken).ConfigureAwait(false);
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

    /// <summary>
    /// Gives consumed DATA bytes back to the client's windows, in batches. The reader's token
    /// reaches the write: a neighbour that stops reading cannot hold a closed link's reader forever.
    /// </summary>
    private async ValueTask AcknowledgeAsync(int bytes, bool endOfFrame, CancellationToken cancellationToken)
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
            await WriteAsync(updates, cancellationToken).ConfigureAwait(false);
        }
    }
}

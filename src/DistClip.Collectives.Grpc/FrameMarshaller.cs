using System.Buffers;
using DistClip.Collectives.Transport;
using Google.Protobuf;
using Grpc.Core;
using ProtoHeader = DistClip.Collectives.Grpc.V1.FrameHeader;
using ProtoOperation = DistClip.Collectives.Grpc.V1.CollectiveOperation;

namespace DistClip.Collectives.Grpc;

/// <summary>A frame to send: the payload is the caller's memory, copied once into the HTTP/2 stream.</summary>
internal sealed record OutgoingFrame(FrameHeader Header, ReadOnlyMemory<byte> Payload);

/// <summary>
/// Writes and reads <c>distclip.v1.CollectiveFrame</c> by hand so that payloads never become
/// <see cref="ByteString"/>s: sends copy the caller's memory straight into the transport's buffers,
/// receives copy from Kestrel's buffers into a pooled array. The header is the generated message.
/// </summary>
internal static class FrameMarshaller
{
    private const uint HeaderTag = (1 << 3) | 2;  // field 1, length-delimited
    private const uint PayloadTag = (2 << 3) | 2; // field 2, length-delimited

    /// <summary>The largest serialized frame for a chunk size: payload plus header and tags.</summary>
    public static int MaxFrameBytes(int chunkBytes) => chunkBytes + 128;

    /// <summary>Room <see cref="WritePrefix"/> needs at most.</summary>
    public const int MaxPrefixBytes = 96;

    /// <summary>
    /// Writes a <c>CollectiveFrame</c>'s bytes up to its payload (header field, payload tag and
    /// length) and returns how many; <paramref name="messageLength"/> is the whole message's length,
    /// the payload's bytes following the prefix on the wire.
    /// </summary>
    public static int WritePrefix(FrameHeader frameHeader, int payloadLength, Span<byte> span, out int messageLength)
    {
        var header = ToProto(frameHeader);
        int headerSize = header.CalculateSize();
        int at = 0;
        span[at++] = (byte)HeaderTag;
        at += WriteVarint(span[at..], (uint)headerSize);
        header.WriteTo(span.Slice(at, headerSize));
        at += headerSize;
        if (payloadLength > 0)
        {
            span[at++] = (byte)PayloadTag;
            at += WriteVarint(span[at..], (uint)payloadLength);
        }

        messageLength = at + payloadLength;
        return at;
    }

    public static void Serialize(OutgoingFrame frame, SerializationContext context)
    {
        var prefix = (Span<byte>)stackalloc byte[MaxPrefixBytes];
        int at = WritePrefix(frame.Header, frame.Payload.Length, prefix, out int total);
        context.SetPayloadLength(total);
        var writer = context.GetBufferWriter();
        prefix[..at].CopyTo(writer.GetSpan(at));
        writer.Advance(at);
        var payload = frame.Payload.Span;
        while (!payload.IsEmpty)
        {
            var target = writer.GetSpan();
            int n = Math.Min(target.Length, payload.Length);
            payload[..n].CopyTo(target);
            writer.Advance(n);
            payload = payload[n..];
        }

        context.Complete();
    }

    /// <summary>Parses a frame into a pooled buffer; a malformed one throws <see cref="InvalidDataException"/>.</summary>
    public static RingFrame Deserialize(DeserializationContext context)
    {
        var reader = new SequenceReader<byte>(context.PayloadAsReadOnlySequence());
        ProtoHeader? header = null;
        byte[]? buffer = null;
        int length = 0;
        try
        {
            while (!reader.End)
            {
                uint tag = ReadVarint(ref reader);
                if ((tag & 7) == 0)
                {
                    ReadVarint(ref reader); // an unknown varint field: skip
                    continue;
                }

                if ((tag & 7) != 2)
                {
                    throw new InvalidDataException($"Unexpected wire type {tag & 7} in a collective frame.");
                }

                int size = checked((int)ReadVarint(ref reader));
                if (size > reader.Remaining)
                {
                    throw new InvalidDataException($"Field {tag >> 3} claims {size} bytes; {reader.Remaining} remain.");
                }

                var field = reader.UnreadSequence.Slice(0, size);
                if (tag == HeaderTag)
                {
                    header = ProtoHeader.Parser.ParseFrom(field);
                }
                else if (tag == PayloadTag && buffer is null)
                {
                    buffer = RingFrame.Rent(size);
                    field.CopyTo(buffer);
                    length = size;
                }

                reader.Advance(size);
            }
        }
        catch (Exception ex) when (ex is not InvalidDataException)
        {
            Release(buffer);
            throw new InvalidDataException("Malformed collective frame.", ex);
        }
        catch
        {
            Release(buffer);
            throw;
        }

        return ToFrame(header, buffer, length);
    }

    /// <summary>The parsed frame; one without a header is refused and its buffer returned.</summary>
    public static RingFrame ToFrame(ProtoHeader? header, byte[]? buffer, int length)
    {
        if (header is null)
        {
            Release(buffer);
            throw new InvalidDataException("A collective frame without a header.");
        }

        return new RingFrame(FromProto(header), buffer, length);
    }

    public static ProtoHeader ToProto(FrameHeader header) => new()
    {
        Generation = header.Generation,
        Sequence = header.Sequence,
        Operation = (ProtoOperation)header.Operation,
        Index = header.Index,
        PayloadLength = header.PayloadLength,
    };

    private static FrameHeader FromProto(ProtoHeader header) => new(
        header.Generation, header.Sequence, (CollectiveOperation)header.Operation, header.Index, header.PayloadLength);

    public static void Release(byte[]? buffer)
    {
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static int WriteVarint(Span<byte> span, uint value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            span[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[i++] = (byte)value;
        return i;
    }

    private static uint ReadVarint(ref SequenceReader<byte> reader)
    {
        uint result = 0;
        for (int shift = 0; shift < 35; shift += 7)
        {
            if (!reader.TryRead(out byte b))
            {
                throw new InvalidDataException("Truncated varint in a collective frame.");
            }

            result |= (uint)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        throw new InvalidDataException("Varint too long in a collective frame.");
    }
}

using System.Buffers.Binary;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>HTTP/2 framing (RFC 9113 §4, §6) shared by the direct link client and server.</summary>
internal static class Http2Frames
{
    public const int HeaderLength = 9;

    /// <summary>SETTINGS_MAX_FRAME_SIZE's initial value: every peer accepts frames this large.</summary>
    public const int DefaultFrameSize = 16_384;

    /// <summary>The initial flow-control window of a connection and of a stream.</summary>
    public const int DefaultWindow = 65_535;

    public const byte Data = 0x0;
    public const byte Headers = 0x1;
    public const byte Priority = 0x2;
    public const byte RstStream = 0x3;
    public const byte Settings = 0x4;
    public const byte PushPromise = 0x5;
    public const byte Ping = 0x6;
    public const byte GoAway = 0x7;
    public const byte WindowUpdate = 0x8;
    public const byte Continuation = 0x9;

    public const byte EndStreamFlag = 0x1;
    public const byte AckFlag = 0x1;
    public const byte EndHeadersFlag = 0x4;
    public const byte PaddedFlag = 0x8;
    public const byte PriorityFlag = 0x20;

    public const ushort SettingEnablePush = 0x2;
    public const ushort SettingMaxConcurrentStreams = 0x3;
    public const ushort SettingInitialWindowSize = 0x4;
    public const ushort SettingMaxFrameSize = 0x5;

    public const uint NoError = 0x0;
    public const uint ProtocolError = 0x1;
    public const uint FrameSizeError = 0x6;
    public const uint RefusedStream = 0x7;
    public const uint Cancel = 0x8;

    public static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    public static void WriteHeader(Span<byte> span, int length, byte type, byte flags, int stream)
    {
        span[0] = (byte)(length >> 16);
        span[1] = (byte)(length >> 8);
        span[2] = (byte)length;
        span[3] = type;
        span[4] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(span[5..], (uint)stream);
    }

    public static (int Length, byte Type, byte Flags, int Stream) ReadHeader(ReadOnlySpan<byte> span) =>
        ((span[0] << 16) | (span[1] << 8) | span[2], span[3], span[4], (int)(BinaryPrimitives.ReadUInt32BigEndian(span[5..]) & 0x7FFF_FFFF));

    /// <summary>A whole frame in a new array.</summary>
    public static byte[] Frame(byte type, byte flags, int stream, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[HeaderLength + payload.Length];
        WriteHeader(frame, payload.Length, type, flags, stream);
        payload.CopyTo(frame.AsSpan(HeaderLength));
        return frame;
    }

    /// <summary>A SETTINGS frame carrying <paramref name="settings"/>.</summary>
    public static byte[] SettingsFrame(params (ushort Id, uint Value)[] settings)
    {
        var payload = new byte[settings.Length * 6];
        for (int i = 0; i < settings.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(payload.AsSpan(i * 6), settings[i].Id);
            BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(i * 6 + 2), settings[i].Value);
        }

        return Frame(Settings, 0, 0, payload);
    }

    public static byte[] WindowUpdateFrame(int stream, uint increment)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(payload, increment);
        return Frame(WindowUpdate, 0, stream, payload);
    }

    public static byte[] ErrorFrame(byte type, int stream, uint code, int lastStream = 0)
    {
        Span<byte> payload = stackalloc byte[8];
        if (type == GoAway)
        {
            BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)lastStream);
            BinaryPrimitives.WriteUInt32BigEndian(payload[4..], code);
            return Frame(type, 0, 0, payload);
        }

        BinaryPrimitives.WriteUInt32BigEndian(payload, code);
        return Frame(type, 0, stream, payload[..4]);
    }

    /// <summary>A HEADERS or CONTINUATION payload without its padding and priority fields.</summary>
    public static ReadOnlySpan<byte> HeaderFragment(ReadOnlySpan<byte> payload, byte flags)
    {
        int padding = 0;
        if ((flags & PaddedFlag) != 0)
        {
            padding = payload[0];
            payload = payload[1..];
        }

        if ((flags & PriorityFlag) != 0)
        {
            payload = payload[5..];
        }

        if (padding > payload.Length)
        {
            throw new InvalidDataException("HEADERS padding longer than the frame.");
        }

        return payload[..^padding];
    }
}

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
    public const uint FlowControlError = 0x3;
    public const uint FrameSizeError = 0x6;
    public const uint RefusedStream = 0x7;
    public const uint Cancel = 0x8;
    public const uint CompressionError = 0x9;
    public const uint EnhanceYourCalm = 0xb;

    /// <summary>The largest flow-control window (RFC 9113 §6.9.1): 2^31 − 1.</summary>
    public const long MaxWindow = int.MaxValue;

    /// <summary>
    /// Checks a SETTINGS payload's values against RFC 9113 §6.5.2 and calls <paramref name="apply"/>
    /// for each; unknown settings are ignored, as the RFC requires.
    /// </summary>
    /// <exception cref="Http2ConnectionException">A value outside its range (PROTOCOL_ERROR or FLOW_CONTROL_ERROR).</exception>
    public static void ReadSettings(ReadOnlySpan<byte> payload, Action<ushort, uint> apply)
    {
        if (payload.Length % 6 != 0)
        {
            throw new Http2ConnectionException(FrameSizeError, $"A SETTINGS payload of {payload.Length} bytes is not a multiple of 6.");
        }

        for (int at = 0; at < payload.Length; at += 6)
        {
            ushort id = BinaryPrimitives.ReadUInt16BigEndian(payload[at..]);
            uint value = BinaryPrimitives.ReadUInt32BigEndian(payload[(at + 2)..]);
            switch (id)
            {
                case SettingEnablePush when value > 1:
                    throw new Http2ConnectionException(ProtocolError, $"SETTINGS_ENABLE_PUSH of {value} (0 or 1).");
                case SettingInitialWindowSize when value > MaxWindow:
                    throw new Http2ConnectionException(FlowControlError, $"SETTINGS_INITIAL_WINDOW_SIZE of {value} (at most 2^31-1).");
                case SettingMaxFrameSize when value is < DefaultFrameSize or > (1 << 24) - 1:
                    throw new Http2ConnectionException(ProtocolError, $"SETTINGS_MAX_FRAME_SIZE of {value} (16384..16777215).");
            }

            apply(id, value);
        }
    }

    /// <summary>A WINDOW_UPDATE's increment (RFC 9113 §6.9): a 4-byte payload, never zero.</summary>
    public static uint ReadWindowIncrement(ReadOnlySpan<byte> payload)
    {
        if (payload.Length != 4)
        {
            throw new Http2ConnectionException(FrameSizeError, $"A WINDOW_UPDATE frame of {payload.Length} bytes.");
        }

        uint increment = BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7FFF_FFFF;
        return increment != 0 ? increment : throw new Http2ConnectionException(ProtocolError, "A WINDOW_UPDATE with an increment of 0.");
    }

    /// <summary>Adds <paramref name="increment"/> to a flow-control window that may not pass 2^31 − 1 (RFC 9113 §6.9.1).</summary>
    public static long Grow(long window, long increment, string which) =>
        window + increment <= MaxWindow
            ? window + increment
            : throw new Http2ConnectionException(FlowControlError, $"The {which} window would reach {window + increment} (at most 2^31-1).");

    /// <summary>The name RFC 9113 §7 gives an error code, for messages.</summary>
    public static string ErrorName(uint code) => code switch
    {
        NoError => "NO_ERROR",
        ProtocolError => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        FlowControlError => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        FrameSizeError => "FRAME_SIZE_ERROR",
        RefusedStream => "REFUSED_STREAM",
        Cancel => "CANCEL",
        CompressionError => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        EnhanceYourCalm => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => $"error 0x{code:x}",
    };

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
            if (payload.IsEmpty)
            {
                throw new Http2ConnectionException(FrameSizeError, "A PADDED HEADERS frame without its pad length.");
            }

            padding = payload[0];
            payload = payload[1..];
        }

        if ((flags & PriorityFlag) != 0 && payload.Length < 5)
        {
            throw new Http2ConnectionException(FrameSizeError, "A HEADERS frame too short for its priority fields.");
        }

        if ((flags & PriorityFlag) != 0)
        {
            payload = payload[5..];
        }

        if (padding > payload.Length)
        {
            throw new Http2ConnectionException(ProtocolError, "HEADERS padding longer than the frame.");
        }

        return payload[..^padding];
    }
}

/// <summary>
/// A connection error (RFC 9113 §5.4.1): the peer broke the protocol and the connection is closed,
/// after a GOAWAY with <see cref="Code"/> where one can still be sent.
/// </summary>
internal sealed class Http2ConnectionException(uint code, string message)
    : IOException($"{Http2Frames.ErrorName(code)}: {message}")
{
    public uint Code { get; } = code;
}

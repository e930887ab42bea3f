using DistClip.Collectives.Transport;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>The fuzzer's inputs: a recorded valid exchange for each end, and the mutations applied to it.</summary>
internal static partial class Http2Fuzzer
{
    /// <summary>A neighbour's whole call as the direct client sends it: handshake, a PING, a window update, a message in two frames, the end.</summary>
    public static List<byte[]> ServerRecording()
    {
        var block = new List<byte>();
        HpackEncoder.WriteLiteral(block, ":method", "POST");
        HpackEncoder.WriteLiteral(block, ":scheme", "http");
        HpackEncoder.WriteLiteral(block, ":path", LinkMethods.ServerOpen.FullName);
        HpackEncoder.WriteLiteral(block, "content-type", "application/grpc");
        HpackEncoder.WriteLiteral(block, LinkHeaders.Secret, Secret);
        HpackEncoder.WriteLiteral(block, LinkHeaders.Generation, "1");
        HpackEncoder.WriteLiteral(block, LinkHeaders.Rank, "0");
        HpackEncoder.WriteLiteral(block, LinkHeaders.WorldSize, "2");
        HpackEncoder.WriteLiteral(block, LinkHeaders.RankToken, Convert.ToHexString(Token));
        byte[] message = Message(1000);
        return
        [
            Http2Frames.Preface.ToArray(),
            Http2Frames.SettingsFrame((Http2Frames.SettingEnablePush, 0), (Http2Frames.SettingInitialWindowSize, 1 << 20)),
            Http2Frames.Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag, 1, block.ToArray()),
            Http2Frames.Frame(Http2Frames.Ping, 0, 0, new byte[8]),
            Http2Frames.WindowUpdateFrame(0, 1000),
            Http2Frames.Frame(Http2Frames.Data, 0, 1, message.AsSpan(0, 300)),
            Http2Frames.Frame(Http2Frames.Data, Http2Frames.PaddedFlag, 1, [4, .. message.AsSpan(300), 0, 0, 0, 0]),
            Http2Frames.Frame(Http2Frames.Data, Http2Frames.EndStreamFlag, 1, default),
        ];
    }

    /// <summary>A server's whole answer as Kestrel or the direct server sends it: SETTINGS, windows, a PING, headers, DATA, trailers.</summary>
    public static List<byte[]> ClientRecording()
    {
        var headers = new List<byte>();
        HpackEncoder.WriteLiteral(headers, ":status", "200");
        HpackEncoder.WriteLiteral(headers, "content-type", "application/grpc");
        HpackEncoder.WriteLiteral(headers, LinkHeaders.Accepted, "1");
        var trailers = new List<byte>();
        HpackEncoder.WriteLiteral(trailers, "grpc-status", "0");
        return
        [
            Http2Frames.SettingsFrame((Http2Frames.SettingMaxFrameSize, 16_384), (Http2Frames.SettingInitialWindowSize, 65_535)),
            Http2Frames.WindowUpdateFrame(0, 1 << 20),
            Http2Frames.Frame(Http2Frames.Settings, Http2Frames.AckFlag, 0, default),
            Http2Frames.Frame(Http2Frames.Ping, 0, 0, new byte[8]),
            Http2Frames.Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag, 1, headers.ToArray()),
            Http2Frames.WindowUpdateFrame(1, 1 << 16),
            Http2Frames.Frame(Http2Frames.Data, Http2Frames.PaddedFlag, 1, [2, 0, 0, 0, 0, 0, 0, 0]),
            Http2Frames.Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag | Http2Frames.EndStreamFlag, 1, trailers.ToArray()),
        ];
    }

    /// <summary>One to four frame-level changes, then byte-level ones; one case in ten is random bytes after the preface.</summary>
    public static byte[] Mutate(List<byte[]> frames, Random random, bool keepPreface)
    {
        frames = [.. frames];
        int fixedFrames = keepPreface ? 1 : 0;
        if (random.Next(10) == 0)
        {
            var noise = new byte[random.Next(1, 2048)];
            random.NextBytes(noise);
            return [.. frames.Take(fixedFrames).SelectMany(f => f), .. noise];
        }

        for (int ops = random.Next(1, 5); ops > 0; ops--)
        {
            int at = random.Next(fixedFrames, frames.Count + 1);
            int existing = random.Next(fixedFrames, frames.Count);
            switch (random.Next(8))
            {
                case 0 when frames.Count > fixedFrames + 1:
                    frames.RemoveAt(existing);
                    break;
                case 1:
                    frames.Insert(at, frames[existing]);
                    break;
                case 2:
                    (frames[existing], frames[^1]) = (frames[^1], frames[existing]);
                    break;
                case 3 when frames[existing].Length >= Http2Frames.HeaderLength:
                    var flagged = (byte[])frames[existing].Clone();
                    flagged[4] = (byte)random.Next(256);
                    frames[existing] = flagged;
                    break;
                case 4 when frames[existing].Length >= Http2Frames.HeaderLength:
                    // A length that lies: larger, smaller, or huge.
                    var lying = (byte[])frames[existing].Clone();
                    int length = random.Next(3) switch { 0 => random.Next(1 << 24), 1 => random.Next(64), _ => lying.Length + random.Next(-8, 9) };
                    Http2Frames.WriteHeader(lying, Math.Clamp(length, 0, (1 << 24) - 1), lying[3], lying[4], Http2Frames.ReadHeader(lying).Stream);
                    frames[existing] = lying;
                    break;
                case 5:
                    frames.Insert(at, RandomFrame(random));
                    break;
                case 6:
                    // A frame repeated many times (floods of PING, SETTINGS, CONTINUATION...).
                    var repeated = random.Next(2) == 0 ? frames[existing] : RandomFrame(random);
                    frames.InsertRange(at, Enumerable.Repeat(repeated, random.Next(2, 200)));
                    break;
                default:
                    var stream = (byte[])frames[existing].Clone();
                    if (stream.Length >= Http2Frames.HeaderLength)
                    {
                        stream[5 + random.Next(4)] = (byte)random.Next(256);
                        frames[existing] = stream;
                    }

                    break;
            }
        }

        var bytes = frames.SelectMany(f => f).ToList();
        int prefix = keepPreface ? Http2Frames.Preface.Length : 0;
        for (int flips = random.Next(0, 4); flips > 0 && bytes.Count > prefix; flips--)
        {
            bytes[random.Next(prefix, bytes.Count)] = (byte)random.Next(256);
        }

        if (random.Next(4) == 0 && bytes.Count > prefix)
        {
            int cut = random.Next(prefix, bytes.Count);
            bytes.RemoveRange(cut, bytes.Count - cut);
        }

        return [.. bytes];
    }

    private static byte[] RandomFrame(Random random)
    {
        var payload = new byte[random.Next(0, 48)];
        random.NextBytes(payload);
        byte type = (byte)random.Next(12);
        if (type == Http2Frames.Settings && random.Next(2) == 0)
        {
            // Often a well-formed SETTINGS with a value out of range, or the edge of the range.
            ushort id = (ushort)random.Next(1, 7);
            uint[] values = [0, 1, 2, 16_383, 16_384, 65_535, (1 << 24) - 1, 1 << 24, int.MaxValue, 1u << 31, uint.MaxValue];
            return Http2Frames.SettingsFrame((id, values[random.Next(values.Length)]));
        }

        if (type == Http2Frames.WindowUpdate && random.Next(2) == 0)
        {
            uint[] increments = [0, 1, 65_535, int.MaxValue];
            return Http2Frames.WindowUpdateFrame(random.Next(3), increments[random.Next(increments.Length)]);
        }

        return Http2Frames.Frame(type, (byte)random.Next(256), random.Next(4), payload);
    }

    private static byte[] Message(int payloadLength)
    {
        var prefix = new byte[FrameMarshaller.MaxPrefixBytes];
        var header = new FrameHeader(1, 1, CollectiveOperation.AllReduce, 0, payloadLength);
        int n = FrameMarshaller.WritePrefix(header, payloadLength, prefix, out int messageLength);
        var message = new byte[5 + messageLength];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(1), (uint)messageLength);
        prefix.AsSpan(0, n).CopyTo(message.AsSpan(5));
        return message;
    }
}

using System.Text;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// The part of HPACK (RFC 7541) a single gRPC call needs. Requests are encoded as literals without
/// indexing, so the peer's decoder keeps no state of ours. Header blocks are decoded in full (static
/// and dynamic table, size updates, Huffman-coded strings); see <see cref="HpackDecoder"/>.
/// </summary>
internal static class HpackEncoder
{
    /// <summary>Appends one header as "literal header field without indexing — new name" (RFC 7541 §6.2.2).</summary>
    public static void WriteLiteral(List<byte> block, string name, string value)
    {
        block.Add(0x00);
        WriteString(block, name);
        WriteString(block, value);
    }

    private static void WriteString(List<byte> block, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        WriteInteger(block, 0x00, 7, bytes.Length);
        block.AddRange(bytes);
    }

    /// <summary>RFC 7541 §5.1: <paramref name="value"/> with an <paramref name="prefixBits"/>-bit prefix, OR-ed into <paramref name="flags"/>.</summary>
    public static void WriteInteger(List<byte> block, byte flags, int prefixBits, int value)
    {
        int max = (1 << prefixBits) - 1;
        if (value < max)
        {
            block.Add((byte)(flags | value));
            return;
        }

        block.Add((byte)(flags | max));
        value -= max;
        while (value >= 0x80)
        {
            block.Add((byte)((value & 0x7F) | 0x80));
            value >>= 7;
        }

        block.Add((byte)value);
    }
}

/// <summary>
/// Decodes header blocks of one connection (the dynamic table lives as long as the connection).
/// Whatever arrives is bounded: the dynamic table by the advertised size, and each block's decoded
/// header list by <c>maxListBytes</c> (counted as RFC 9113 §6.5.2 does, name + value + 32 per
/// field), so that neither Huffman coding nor indexing the same large entry again and again can
/// make a small block expand. Errors are COMPRESSION_ERROR <see cref="Http2ConnectionException"/>s.
/// </summary>
internal sealed class HpackDecoder
{
    private static readonly (string Name, string Value)[] StaticTable =
    [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""), ("date", ""),
        ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""),
        ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""),
        ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
        ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""),
        ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
        ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    ];

    private readonly LinkedList<(string Name, string Value)> _dynamic = new(); // newest first
    private readonly int _maxAllowedSize;
    private readonly int _maxListBytes;
    private int _maxSize;
    private int _size;
    private int _listBytes; // of the block being decoded

    /// <param name="tableSize">The SETTINGS_HEADER_TABLE_SIZE this side advertised (4096 by default).</param>
    /// <param name="maxListBytes">The largest decoded header list of one block.</param>
    public HpackDecoder(int tableSize = 4096, int maxListBytes = 16 << 10)
    {
        _maxAllowedSize = tableSize;
        _maxSize = tableSize;
        _maxListBytes = maxListBytes;
    }

    public static int StaticCount => StaticTable.Length;

    /// <summary>Decodes a complete header block (HEADERS plus any CONTINUATION payloads).</summary>
    public List<(string Name, string Value)> Decode(ReadOnlySpan<byte> block)
    {
        var headers = new List<(string, string)>();
        _listBytes = 0;
        int at = 0;
        while (at < block.Length)
        {
            byte b = block[at];
            if ((b & 0x80) != 0)
            {
                var field = Entry(ReadInteger(block, ref at, 7));
                Count(EntrySize(field) - 32);
                headers.Add(field);
            }
            else if ((b & 0xC0) == 0x40)
            {
                var field = ReadLiteral(block, ref at, 6);
                headers.Add(field);
                Add(field);
            }
            else if ((b & 0xE0) == 0x20)
            {
                int size = ReadInteger(block, ref at, 5);
                if (size > _maxAllowedSize)
                {
                    throw Bad($"HPACK table size update to {size} exceeds the advertised {_maxAllowedSize}.");
                }

                _maxSize = size;
                Evict();
            }
            else
            {
                headers.Add(ReadLiteral(block, ref at, 4)); // without indexing (0000) or never indexed (0001)
            }
        }

        return headers;
    }

    private (string, string) ReadLiteral(ReadOnlySpan<byte> block, ref int at, int prefixBits)
    {
        Count(0); // the field's 32 bytes of overhead first: a block of empty literals is bounded too
        int index = ReadInteger(block, ref at, prefixBits);
        string name;
        if (index == 0)
        {
            name = ReadString(block, ref at);
        }
        else
        {
            name = Entry(index).Name;
            Count(name.Length - 32);
        }

        return (name, ReadString(block, ref at));
    }

    /// <summary>Adds a field's share to the block's decoded size (32 bytes of overhead plus <paramref name="bytes"/>).</summary>
    private void Count(int bytes)
    {
        _listBytes += bytes + 32;
        if (_listBytes > _maxListBytes)
        {
            throw Bad($"A header list over {_maxListBytes} bytes decoded.");
        }
    }

    private static Http2ConnectionException Bad(string message) => new(Http2Frames.CompressionError, message);

    private (string Name, string Value) Entry(int index)
    {
        if (index >= 1 && index <= StaticTable.Length)
        {
            return StaticTable[index - 1];
        }

        int dynamicIndex = index - StaticTable.Length - 1;
        if (index < 1 || dynamicIndex >= _dynamic.Count)
        {
            throw Bad($"HPACK index {index} is outside the tables ({StaticTable.Length} static, {_dynamic.Count} dynamic).");
        }

        return _dynamic.ElementAt(dynamicIndex);
    }

    private void Add((string Name, string Value) field)
    {
        int size = EntrySize(field);
        if (size > _maxSize)
        {
            _dynamic.Clear();
            _size = 0;
            return;
        }

        _dynamic.AddFirst(field);
        _size += size;
        Evict();
    }

    private void Evict()
    {
        while (_size > _maxSize && _dynamic.Last is { } oldest)
        {
            _size -= EntrySize(oldest.Value);
            _dynamic.RemoveLast();
        }
    }

    private static int EntrySize((string Name, string Value) field) => field.Name.Length + field.Value.Length + 32;

    /// <summary>A string literal (RFC 7541 §5.2), counted into the block's decoded size.</summary>
    private string ReadString(ReadOnlySpan<byte> block, ref int at)
    {
        if (at >= block.Length)
        {
            throw Bad("Truncated HPACK string.");
        }

        bool huffman = (block[at] & 0x80) != 0;
        int length = ReadInteger(block, ref at, 7);
        if (length > block.Length - at)
        {
            throw Bad($"HPACK string of {length} bytes overruns its block.");
        }

        var encoded = block.Slice(at, length);
        at += length;
        int budget = _maxListBytes - _listBytes;
        if (!huffman)
        {
            Count(length - 32);
            return Encoding.Latin1.GetString(encoded);
        }

        // The shortest code is 5 bits, so a string decodes to at most 8/5 of its length.
        var decoded = new byte[Math.Min(budget, (int)Math.Min(int.MaxValue, (long)length * 8 / 5))];
        int n = Huffman.Decode(encoded, decoded);
        Count(n - 32);
        return Encoding.Latin1.GetString(decoded, 0, n);
    }

    private static int ReadInteger(ReadOnlySpan<byte> block, ref int at, int prefixBits)
    {
        if (at >= block.Length)
        {
            throw Bad("Truncated HPACK integer.");
        }

        int max = (1 << prefixBits) - 1;
        int value = block[at++] & max;
        if (value < max)
        {
            return value;
        }

        for (int shift = 0; shift <= 21; shift += 7)
        {
            if (at >= block.Length)
            {
                throw Bad("Truncated HPACK integer.");
            }

            byte b = block[at++];
            value += (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }

        throw Bad("HPACK integer too large.");
    }
}

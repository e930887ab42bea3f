namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// HPACK's static Huffman code (RFC 7541 §5.2, Appendix B). The code is canonical: within one code
/// length, codes are consecutive in symbol order, and each length starts where the shorter ones end.
/// So the 257 code lengths below define every code; <see cref="Code"/> rebuilds Appendix B from them.
/// </summary>
internal static class Huffman
{
    public const int Eos = 256;

    // Appendix B's code length of each symbol, 0..255 and EOS (256).
    private static ReadOnlySpan<byte> Lengths =>
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0..15
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16..31
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,         // ' ' .. '/'
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,              // '0' .. '?'
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,                // '@' .. 'O'
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,             // 'P' .. '_'
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,                // '`' .. 'o'
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,            // 'p' .. 127
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128..143
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144..159
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160..175
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176..191
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192..207
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208..223
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224..239
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240..255
        30,                                                              // EOS
    ];

    private const int MaxLength = 30;

    private static readonly uint[] Codes = new uint[Eos + 1];
    private static readonly int[] FirstCode = new int[MaxLength + 2]; // the first code of each length
    private static readonly int[] CountOf = new int[MaxLength + 2];   // how many codes have each length
    private static readonly int[] FirstIndex = new int[MaxLength + 2]; // where each length starts in BySymbolOrder
    private static readonly short[] BySymbolOrder = new short[Eos + 1]; // symbols sorted by (length, symbol)

    static Huffman()
    {
        var lengths = Lengths;
        int at = 0;
        int code = 0;
        for (int length = 1; length <= MaxLength; length++)
        {
            FirstCode[length] = code;
            FirstIndex[length] = at;
            for (int symbol = 0; symbol <= Eos; symbol++)
            {
                if (lengths[symbol] == length)
                {
                    Codes[symbol] = (uint)code++;
                    BySymbolOrder[at++] = (short)symbol;
                }
            }

            CountOf[length] = at - FirstIndex[length];
            code <<= 1;
        }
    }

    /// <summary>Appendix B's code of <paramref name="symbol"/> (0..256), right-aligned, and its length in bits.</summary>
    public static (uint Code, int Length) Code(int symbol) => (Codes[symbol], Lengths[symbol]);

    /// <summary>How many bytes <paramref name="text"/> takes Huffman-coded (padding included).</summary>
    public static int EncodedLength(ReadOnlySpan<byte> text)
    {
        long bits = 0;
        foreach (byte b in text)
        {
            bits += Lengths[b];
        }

        return (int)((bits + 7) / 8);
    }

    /// <summary>Huffman-codes <paramref name="text"/> into <paramref name="output"/>, padded with the EOS prefix (all ones).</summary>
    public static void Encode(ReadOnlySpan<byte> text, List<byte> output)
    {
        ulong pending = 0;
        int bits = 0;
        foreach (byte b in text)
        {
            pending = (pending << Lengths[b]) | Codes[b];
            bits += Lengths[b];
            while (bits >= 8)
            {
                bits -= 8;
                output.Add((byte)(pending >> bits));
            }
        }

        if (bits > 0)
        {
            output.Add((byte)((pending << (8 - bits)) | (0xFFu >> bits)));
        }
    }

    /// <summary>
    /// Decodes a Huffman-coded string (RFC 7541 §5.2) into <paramref name="output"/>, which bounds its
    /// length. The string may end with at most 7 bits of padding, all ones; EOS inside it is an error.
    /// </summary>
    /// <returns>The number of decoded bytes.</returns>
    /// <exception cref="Http2ConnectionException">COMPRESSION_ERROR: bad padding, EOS, or longer than <paramref name="output"/>.</exception>
    public static int Decode(ReadOnlySpan<byte> encoded, Span<byte> output)
    {
        int written = 0;
        int code = 0;   // the bits read since the last symbol
        int length = 0; // how many
        foreach (byte b in encoded)
        {
            for (int bit = 7; bit >= 0; bit--)
            {
                code = (code << 1) | ((b >> bit) & 1);
                length++;
                int offset = code - FirstCode[length];
                if (offset >= 0 && offset < CountOf[length])
                {
                    int symbol = BySymbolOrder[FirstIndex[length] + offset];
                    if (symbol == Eos)
                    {
                        throw new Http2ConnectionException(Http2Frames.CompressionError, "EOS inside a Huffman-coded HPACK string.");
                    }

                    if (written == output.Length)
                    {
                        throw new Http2ConnectionException(
                            Http2Frames.CompressionError, $"A Huffman-coded HPACK string longer than the {output.Length} bytes allowed.");
                    }

                    output[written++] = (byte)symbol;
                    code = 0;
                    length = 0;
                }
            }
        }

        // Codes longer than 7 bits are never complete here: EOS's prefix (all ones) is the only padding.
        if (length > 7 || code != (1 << length) - 1)
        {
            throw new Http2ConnectionException(
                Http2Frames.CompressionError, $"A Huffman-coded HPACK string ends in {length} bits of padding that are not EOS's prefix.");
        }

        return written;
    }
}

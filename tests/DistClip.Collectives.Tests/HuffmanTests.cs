using System.Text;
using DistClip.Collectives.Grpc.Http2;

namespace DistClip.Collectives.Tests;

/// <summary>HPACK's Huffman code (RFC 7541 §5.2, Appendix B) and the decoder's bounds, against the RFC's own examples.</summary>
public sealed class HuffmanTests
{
    [Fact]
    public void The_code_is_complete_and_matches_Appendix_B_where_sampled()
    {
        // A complete prefix code: the Kraft sum of 2^-length over all 257 symbols is exactly 1.
        long kraft = 0;
        for (int symbol = 0; symbol <= Huffman.Eos; symbol++)
        {
            kraft += 1L << (30 - Huffman.Code(symbol).Length);
        }

        Assert.Equal(1L << 30, kraft);
        // Appendix B, a sample from every code length (code, length).
        Assert.Equal((0x0u, 5), Huffman.Code('0'));
        Assert.Equal((0x9u, 5), Huffman.Code('t'));
        Assert.Equal((0x14u, 6), Huffman.Code(' '));
        Assert.Equal((0x2du, 6), Huffman.Code('u'));
        Assert.Equal((0x5cu, 7), Huffman.Code(':'));
        Assert.Equal((0x7bu, 7), Huffman.Code('z'));
        Assert.Equal((0xfdu, 8), Huffman.Code('Z'));
        Assert.Equal((0x3fcu, 10), Huffman.Code('?'));
        Assert.Equal((0x7fcu, 11), Huffman.Code('|'));
        Assert.Equal((0xffbu, 12), Huffman.Code('>'));
        Assert.Equal((0x1ff8u, 13), Huffman.Code(0));
        Assert.Equal((0x3ffdu, 14), Huffman.Code('}'));
        Assert.Equal((0x7ffeu, 15), Huffman.Code('{'));
        Assert.Equal((0x7fff0u, 19), Huffman.Code('\\'));
        Assert.Equal((0xfffe6u, 20), Huffman.Code(128));
        Assert.Equal((0x1fffe8u, 21), Huffman.Code(230));
        Assert.Equal((0x3fffebu, 22), Huffman.Code(233));
        Assert.Equal((0x7fffd8u, 23), Huffman.Code(1));
        Assert.Equal((0xfffff5u, 24), Huffman.Code(237));
        Assert.Equal((0x1ffffefu, 25), Huffman.Code(235));
        Assert.Equal((0x3ffffeeu, 26), Huffman.Code(255));
        Assert.Equal((0x7fffff0u, 27), Huffman.Code(254));
        Assert.Equal((0xffffffeu, 28), Huffman.Code(249));
        Assert.Equal((0x3ffffffcu, 30), Huffman.Code(10));
        Assert.Equal((0x3fffffffu, 30), Huffman.Code(Huffman.Eos));
    }

    [Fact]
    public void Decodes_the_RFC_C4_requests_with_Huffman_coding()
    {
        var decoder = new HpackDecoder();

        var first = decoder.Decode(Convert.FromHexString("828684418cf1e3c2e5f23a6ba0ab90f4ff"));
        var second = decoder.Decode(Convert.FromHexString("828684be5886a8eb10649cbf"));
        var third = decoder.Decode(Convert.FromHexString("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"));

        Assert.Equal([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")], first);
        Assert.Equal([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"), ("cache-control", "no-cache")], second);
        Assert.Equal(
            [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")],
            third);
    }

    [Fact]
    public void Decodes_the_RFC_C6_responses_with_Huffman_coding_and_a_256_byte_table()
    {
        var decoder = new HpackDecoder(tableSize: 256);

        var first = decoder.Decode(Convert.FromHexString(
            "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3"));
        var second = decoder.Decode(Convert.FromHexString("4883640effc1c0bf"));
        var third = decoder.Decode(Convert.FromHexString(
            "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"));

        Assert.Equal(
            [(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")],
            first);
        Assert.Equal(
            [(":status", "307"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")],
            second);
        Assert.Equal(
            [
                (":status", "200"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT"), ("location", "https://www.example.com"),
                ("content-encoding", "gzip"), ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
            ],
            third);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Every_byte_string_round_trips(int seed)
    {
        var random = new Random(seed);
        for (int i = 0; i < 500; i++)
        {
            var text = new byte[random.Next(0, 64)];
            random.NextBytes(text);
            if (i % 2 == 0)
            {
                // Half of them printable, where the short codes are.
                for (int j = 0; j < text.Length; j++)
                {
                    text[j] = (byte)random.Next(0x20, 0x7f);
                }
            }

            var encoded = new List<byte>();
            Huffman.Encode(text, encoded);
            var decoded = new byte[text.Length];
            int n = Huffman.Decode(encoded.ToArray(), decoded);

            Assert.Equal(Huffman.EncodedLength(text), encoded.Count);
            Assert.Equal(text, decoded[..n]);
        }
    }

    [Theory]
    [InlineData("ff", "8 bits of padding")]            // a whole byte of padding (at most 7 bits may pad)
    [InlineData("1fff", "padding")]                     // '0' (00000) then 11 bits of ones: too long to be padding
    [InlineData("00", "padding")]                       // '0' then 3 zero bits: padding must be ones
    [InlineData("fffffffc", "EOS inside")]              // EOS (30 ones) in the string
    [InlineData("0b", "padding")]                       // '1' (00001), then 011: neither a symbol nor padding
    public void Refuses_bad_padding_and_EOS(string hex, string named)
    {
        var error = Assert.Throws<Http2ConnectionException>(() => Huffman.Decode(Convert.FromHexString(hex), new byte[64]));

        Assert.Equal(Http2Frames.CompressionError, error.Code);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void Decoding_stops_at_the_output_bound()
    {
        var encoded = new List<byte>();
        Huffman.Encode(Encoding.ASCII.GetBytes(new string('a', 100)), encoded);

        var error = Assert.Throws<Http2ConnectionException>(() => Huffman.Decode(encoded.ToArray(), new byte[99]));

        Assert.Contains("longer than the 99 bytes allowed", error.Message);
    }

    [Fact]
    public void A_Huffman_string_that_would_decode_past_the_header_list_bound_is_refused()
    {
        // 1,000 '0's Huffman-code to 625 bytes: a literal that decodes to 1,000 + 32 bytes.
        var value = new List<byte>();
        Huffman.Encode(Encoding.ASCII.GetBytes(new string('0', 1000)), value);
        var block = new List<byte> { 0x00, 0x01, (byte)'x' };
        HpackEncoder.WriteInteger(block, 0x80, 7, value.Count);
        block.AddRange(value);

        var fits = new HpackDecoder(maxListBytes: 1034).Decode(block.ToArray());
        var error = Assert.Throws<Http2ConnectionException>(() => new HpackDecoder(maxListBytes: 1032).Decode(block.ToArray()));

        Assert.Equal(new string('0', 1000), Assert.Single(fits).Value);
        Assert.Contains("longer than the 999 bytes allowed", error.Message); // 1032 less the field's 32 and its name
    }

    [Fact]
    public void Indexing_one_large_entry_again_and_again_is_bounded_by_the_header_list_size()
    {
        // Amplification: one 4,000-byte entry in the dynamic table, then 10,000 one-byte references to it.
        var block = new List<byte> { 0x40, 0x01, (byte)'x' };
        HpackEncoder.WriteInteger(block, 0x00, 7, 4000);
        block.AddRange(Enumerable.Repeat((byte)'v', 4000));
        block.AddRange(Enumerable.Repeat((byte)0xBE, 10_000)); // index 62: the newest dynamic entry

        var error = Assert.Throws<Http2ConnectionException>(() => new HpackDecoder(maxListBytes: 16 << 10).Decode(block.ToArray()));

        Assert.Contains("header list over 16384 bytes", error.Message);
    }

    [Fact]
    public void Many_empty_literals_are_bounded_too()
    {
        // Each field costs 32 bytes of list size even with an empty name and value.
        var block = Enumerable.Range(0, 1000).SelectMany(_ => new byte[] { 0x00, 0x00, 0x00 }).ToArray();

        var error = Assert.Throws<Http2ConnectionException>(() => new HpackDecoder(maxListBytes: 16 << 10).Decode(block));

        Assert.Contains("header list over", error.Message);
    }
}

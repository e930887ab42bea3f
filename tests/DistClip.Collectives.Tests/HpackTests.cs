using DistClip.Collectives.Grpc.Http2;

namespace DistClip.Collectives.Tests;

/// <summary>The direct link client's HPACK (RFC 7541), against the RFC's own examples.</summary>
public sealed class HpackTests
{
    [Fact]
    public void Decodes_the_RFC_C3_requests_with_the_dynamic_table_carried_between_blocks()
    {
        var decoder = new HpackDecoder();

        // C.3.1: indexed :method GET, :scheme http, :path /; :authority www.example.com with incremental indexing.
        var first = decoder.Decode(Convert.FromHexString("828684410f7777772e6578616d706c652e636f6d"));
        // C.3.2: ... and index 62 (the dynamic entry), plus cache-control: no-cache indexed.
        var second = decoder.Decode(Convert.FromHexString("828684be58086e6f2d6361636865"));

        Assert.Equal([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")], first);
        Assert.Equal([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"), ("cache-control", "no-cache")], second);
    }

    [Fact]
    public void A_table_size_update_to_zero_evicts_everything()
    {
        var decoder = new HpackDecoder();
        decoder.Decode(Convert.FromHexString("410f7777772e6578616d706c652e636f6d"));

        var error = Assert.Throws<Http2ConnectionException>(() => decoder.Decode(Convert.FromHexString("20be")));

        Assert.Contains("index 62", error.Message);
    }

    [Fact]
    public void What_the_encoder_writes_the_decoder_reads_back_including_long_lengths()
    {
        var block = new List<byte>();
        string longValue = new('x', 300);
        HpackEncoder.WriteLiteral(block, ":path", "/distclip.v1.CollectiveLink/Open");
        HpackEncoder.WriteLiteral(block, "x-distclip-secret", longValue);

        var fields = new HpackDecoder().Decode(block.ToArray());

        Assert.Equal([(":path", "/distclip.v1.CollectiveLink/Open"), ("x-distclip-secret", longValue)], fields);
    }

    [Theory]
    [InlineData("c0", "index 64")]                                   // past both tables
    [InlineData("000a6162", "overruns")]                             // a 10-byte name in a 4-byte block
    [InlineData("3fe21f", "4097")]                                   // a table size above the advertised 4096
    [InlineData("0f", "Truncated")]                                  // an integer cut off after its prefix
    [InlineData("00ffffffffff01", "too large")]                      // an integer past 2^28
    public void Refuses_what_it_cannot_read_rather_than_misreading_it(string hex, string named)
    {
        var error = Assert.Throws<Http2ConnectionException>(() => new HpackDecoder().Decode(Convert.FromHexString(hex)));

        Assert.Equal(Http2Frames.CompressionError, error.Code);
        Assert.Contains(named, error.Message);
    }
}

namespace DistClip.Collectives.Grpc;

/// <summary>Call metadata of <c>CollectiveLink.Open</c> (see collectives.proto).</summary>
internal static class LinkHeaders
{
    public const string Secret = "x-distclip-secret";
    public const string Generation = "x-distclip-generation";
    public const string Rank = "x-distclip-rank";
    public const string WorldSize = "x-distclip-world-size";

    /// <summary>The sender's rank token for the generation, in hex (<see cref="RingTokens"/>).</summary>
    public const string RankToken = "x-distclip-rank-token";

    /// <summary>Response header: the link was admitted (a refusal is a trailers-only response without it).</summary>
    public const string Accepted = "x-distclip-accepted";
}

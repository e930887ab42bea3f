namespace DistClip.Collectives.Grpc;

/// <summary>
/// A rank's ring credentials for one generation, as the coordinator hands them out: the token this
/// rank presents when it opens its link to the right neighbour, and the token its left neighbour
/// (the only rank that may open a link to it) must present. The transport treats both as opaque
/// bytes and never sees the key behind them, so no worker can compute another rank's token, nor any
/// token of a generation it has not been assigned: a link presenting another token, or claiming a
/// generation this endpoint has no group of, is refused.
/// </summary>
public sealed record RingTokens(byte[] Own, byte[] ExpectedLeft)
{
    /// <summary>Shorter is guessable.</summary>
    public const int MinBytes = 16;

    /// <summary>Keeps the header small (it is hex, twice this in characters).</summary>
    public const int MaxBytes = 256;

    internal static bool IsToken(byte[]? token) => token is { Length: >= MinBytes and <= MaxBytes };
}

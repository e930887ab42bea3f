namespace DistClip.Collectives;

/// <summary>A rank and where it is reached (for messages; "in-memory" for the in-memory transport).</summary>
public sealed record PeerInfo(int Rank, string Endpoint)
{
    public override string ToString() => $"rank {Rank} ({Endpoint})";
}

namespace DistClip.Collectives.Grpc;

/// <summary>
/// Who is in the group, as the coordinator assigned it: this worker's rank, every rank's collectives
/// endpoint (index = rank), the generation, and the rank tokens this rank's links present and expect.
/// </summary>
public sealed record CollectiveMembership(int Rank, IReadOnlyList<Uri> Peers, long Generation, RingTokens Tokens)
{
    public int WorldSize => Peers.Count;

    public int LeftRank => (Rank - 1 + WorldSize) % WorldSize;

    public int RightRank => (Rank + 1) % WorldSize;

    public void Validate()
    {
        if (Peers is null || Peers.Count == 0)
        {
            throw new ArgumentException($"{nameof(Peers)} must list at least this rank.", nameof(Peers));
        }

        if (Rank < 0 || Rank >= Peers.Count)
        {
            throw new ArgumentException($"{nameof(Rank)} {Rank} is outside 0..{Peers.Count - 1}.", nameof(Rank));
        }

        if (Generation < 0)
        {
            throw new ArgumentException($"{nameof(Generation)} must not be negative, not {Generation}.", nameof(Generation));
        }

        if (Tokens is null || !RingTokens.IsToken(Tokens.Own) || !RingTokens.IsToken(Tokens.ExpectedLeft))
        {
            throw new ArgumentException(
                $"{nameof(Tokens)} must hold this rank's token and its left neighbour's, each {RingTokens.MinBytes}..{RingTokens.MaxBytes} bytes.", nameof(Tokens));
        }
    }
}

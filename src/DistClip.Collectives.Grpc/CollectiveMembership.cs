namespace DistClip.Collectives.Grpc;

/// <summary>
/// Who is in the group, as the coordinator assigned it: this worker's rank, every rank's collectives
/// endpoint (index = rank), and the generation.
/// </summary>
public sealed record CollectiveMembership(int Rank, IReadOnlyList<Uri> Peers, long Generation)
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
    }
}

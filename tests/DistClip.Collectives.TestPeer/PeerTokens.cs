using System.Security.Cryptography;
using System.Text;
using DistClip.Collectives.Grpc;

namespace DistClip.Collectives.TestPeer;

/// <summary>
/// Rank tokens for rings that have no coordinator (tests, peer processes): each rank's token is a
/// hash of (secret, generation, rank), so every process can compute the tokens the coordinator would
/// have handed it. Real runs take theirs from the coordinator, whose key no worker holds.
/// </summary>
public static class PeerTokens
{
    public static byte[] Of(string secret, long generation, int rank) =>
        SHA256.HashData(Encoding.UTF8.GetBytes($"{secret}/{generation}/{rank}"));

    /// <summary>What rank <paramref name="rank"/> of <paramref name="worldSize"/> presents and expects in <paramref name="generation"/>.</summary>
    public static RingTokens For(string secret, long generation, int rank, int worldSize) =>
        new(Of(secret, generation, rank), Of(secret, generation, (rank - 1 + worldSize) % worldSize));
}

using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace DistClip.Control;

/// <summary>
/// Per-rank identity (docs/architecture.md, "Security"). The run secret only says "one of ours";
/// a rank token says "rank R of generation G of this run": HMAC-SHA256 over (run id, generation,
/// rank) under a key derived from the secret and a random salt that never leaves the coordinator.
/// Who holds the secret alone (from a process list, a log, an unrelated pod) can join, but cannot
/// compute any rank's token, so cannot speak for a rank it was not given. A worker receives only
/// its own token and the one its left neighbour will present on the ring.
/// </summary>
public sealed class RankTokens
{
    /// <summary>Bytes in a token (an HMAC-SHA256).</summary>
    public const int Length = 32;

    // HKDF's info: binds the key to this use, so the same secret never yields the same key elsewhere.
    private static readonly byte[] KeyLabel = Encoding.ASCII.GetBytes("distclip/v1 rank token key");

    private readonly byte[] _key;
    private readonly byte[] _runId;

    private RankTokens(byte[] key, string runId)
    {
        _key = key;
        _runId = Encoding.UTF8.GetBytes(runId);
        RunId = runId;
    }

    public string RunId { get; }

    /// <summary>The coordinator's tokens for a run: a fresh random salt, kept in this process only.</summary>
    public static RankTokens ForRun(string secret, string runId) => Derive(secret, RandomNumberGenerator.GetBytes(32), runId);

    /// <summary>HKDF-SHA256 of the secret with <paramref name="salt"/> and a fixed label (tests pass their own salt).</summary>
    public static RankTokens Derive(string secret, byte[] salt, string runId)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        ArgumentNullException.ThrowIfNull(salt);
        ArgumentNullException.ThrowIfNull(runId);
        byte[] key = HKDF.DeriveKey(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(secret), Length, salt, KeyLabel);
        return new RankTokens(key, runId);
    }

    /// <summary>The token of <paramref name="rank"/> in <paramref name="generation"/>.</summary>
    public byte[] Of(long generation, int rank) => HMACSHA256.HashData(_key, Canonical(_runId, generation, rank));

    /// <summary>Whether <paramref name="presented"/> is the token of (generation, rank); constant-time in its bytes.</summary>
    public bool Matches(ReadOnlySpan<byte> presented, long generation, int rank) =>
        CryptographicOperations.FixedTimeEquals(presented, Of(generation, rank));

    /// <summary>
    /// One encoding per (run id, generation, rank), and no two tuples share one: the run id's length
    /// comes first (4 bytes, big-endian), then its UTF-8 bytes, the generation (8) and the rank (4).
    /// </summary>
    internal static byte[] Canonical(ReadOnlySpan<byte> runId, long generation, int rank)
    {
        var bytes = new byte[4 + runId.Length + 8 + 4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, runId.Length);
        runId.CopyTo(bytes.AsSpan(4));
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(4 + runId.Length), generation);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12 + runId.Length), rank);
        return bytes;
    }
}

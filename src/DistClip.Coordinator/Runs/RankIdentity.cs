using DistClip.Control;
using DistClip.Logging;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Runs;

/// <summary>
/// Who may speak for a rank: the coordinator issues each member the token of its (generation, rank)
/// when its generation forms, and checks the token on every call that speaks for a rank. The key
/// behind the tokens never leaves this process (<see cref="RankTokens"/>), so the run secret alone
/// cannot finish, report or heartbeat for a rank. Refusals are logged, at most
/// <see cref="LogLines"/> per <see cref="LogInterval"/>, then counted: whoever holds the secret can
/// cause as many as they like.
/// </summary>
public sealed partial class RankIdentity(RankTokens tokens, ILogger logger, TimeProvider time)
{
    public const int LogLines = 10;
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    private readonly LogRateLimiter _refusals = new(LogLines, LogInterval, time);

    /// <summary>The token member <paramref name="rank"/> of <paramref name="generation"/> presents.</summary>
    public byte[] TokenOf(long generation, int rank) => tokens.Of(generation, rank);

    /// <summary>Whether <paramref name="presented"/> is the token of (generation, rank); a refusal is logged, naming the call.</summary>
    public bool Admits(ReadOnlySpan<byte> presented, long generation, int rank, string call)
    {
        if (rank >= 0 && tokens.Matches(presented, generation, rank))
        {
            return true;
        }

        if (_refusals.TryLog(out long suppressed))
        {
            LogRefused(logger, call, rank, generation, suppressed);
        }

        return false;
    }

    /// <summary>What a caller is told: which claim its token failed, nothing about the token.</summary>
    public static string Refusal(long generation, int rank) => $"token does not match rank {rank} generation {generation}";

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Refused {Call}: its token does not match rank {Rank} generation {Generation} ({Suppressed} more refusals were not logged before this one)")]
    private static partial void LogRefused(ILogger logger, string call, int rank, long generation, long suppressed);
}

using DistClip.Logging;
using Microsoft.Extensions.Logging;

namespace DistClip.Collectives.Grpc;

internal static partial class GrpcLog
{
    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Collectives endpoint listening on {Address}")]
    public static partial void EndpointStarted(ILogger logger, Uri address);

    [LoggerMessage(EventId = 102, Level = LogLevel.Debug, Message = "Rank {Rank}: accepted the link from rank {Left} for generation {Generation}")]
    public static partial void LinkAccepted(ILogger logger, int rank, int left, long generation);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "Refused a collectives link ({Reason}): {Detail}")]
    public static partial void LinkRefused(ILogger logger, LinkRefusal reason, string detail);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "Rank {Rank}: link broken: {Detail}")]
    public static partial void LinkBroken(ILogger logger, int rank, string detail);

    [LoggerMessage(EventId = 105, Level = LogLevel.Debug, Message = "Rank {Rank}: connecting to rank {Right} at {Address} (attempt {Attempt}) failed: {Detail}")]
    public static partial void ConnectRetry(ILogger logger, int rank, int right, Uri address, int attempt, string detail);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "{Count} more log lines about refused or failed connections were suppressed (at most {Lines} per {Interval})")]
    public static partial void Suppressed(ILogger logger, long count, int lines, TimeSpan interval);

    [LoggerMessage(EventId = 107, Level = LogLevel.Warning, Message = "Closed a connection from {Peer} at once: {Count} connections are already waiting to authenticate")]
    public static partial void TooManyUnauthenticated(ILogger logger, string peer, int count);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "Accepting a collectives connection failed ({Error}); retrying in {Delay}")]
    public static partial void AcceptFailed(ILogger logger, string error, TimeSpan delay);

    /// <summary>At most this many refusal and accept-failure lines per <see cref="LimitInterval"/>, whatever a stranger does.</summary>
    public const int LimitLines = 10;

    public static readonly TimeSpan LimitInterval = TimeSpan.FromSeconds(10);

    /// <summary>Logs through <paramref name="limiter"/>: nothing when over its rate, a summary of what was dropped before the next line that goes through.</summary>
    public static void Limited(this LogRateLimiter limiter, ILogger logger, Action<ILogger> log)
    {
        if (limiter.TryLog(out long suppressed))
        {
            if (suppressed > 0)
            {
                Suppressed(logger, suppressed, LimitLines, LimitInterval);
            }

            log(logger);
        }
    }
}

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
}

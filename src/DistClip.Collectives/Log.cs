using Microsoft.Extensions.Logging;

namespace DistClip.Collectives;

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug,
        Message = "Rank {Rank}: {Operation} #{Sequence} of {Bytes} bytes done in {ElapsedMs:F2} ms")]
    public static partial void OperationCompleted(
        ILogger logger, int rank, CollectiveOperation operation, long sequence, long bytes, double elapsedMs);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning,
        Message = "Rank {Rank}: {Operation} #{Sequence} of generation {Generation} failed; the group is faulted")]
    public static partial void OperationFailed(
        ILogger logger, int rank, CollectiveOperation operation, long sequence, long generation, Exception exception);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information,
        Message = "Rank {Rank} of {WorldSize}: collective group of generation {Generation} is ready (left {Left}, right {Right})")]
    public static partial void GroupReady(ILogger logger, int rank, int worldSize, long generation, PeerInfo left, PeerInfo right);
}

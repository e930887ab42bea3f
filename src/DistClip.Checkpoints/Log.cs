using Microsoft.Extensions.Logging;

namespace DistClip.Checkpoints;

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Committed checkpoint step {Step} to {Directory}: {Bytes} bytes in {Milliseconds:F0} ms")]
    public static partial void Committed(ILogger logger, long step, string directory, long bytes, double milliseconds);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "{Problem}; trying an older checkpoint")]
    public static partial void SkippedCorrupt(ILogger logger, string problem);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "{Warning}")]
    public static partial void ResolveWarning(ILogger logger, string warning);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Resolved checkpoint step {Step} at {Directory}")]
    public static partial void Resolved(ILogger logger, long step, string directory);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Deleted checkpoint {Directory} ({Reason})")]
    public static partial void Deleted(ILogger logger, string directory, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Debug, Message = "Removed leftover {Path} from an interrupted write")]
    public static partial void RemovedLeftover(ILogger logger, string path);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "Could not delete {Path} after a successful commit; will retry next commit")]
    public static partial void DeleteFailed(ILogger logger, Exception exception, string path);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "Directory fsync is unavailable for {Directory}; committed names rely on the filesystem's own ordering")]
    public static partial void DirectorySyncUnavailable(ILogger logger, string directory);
}

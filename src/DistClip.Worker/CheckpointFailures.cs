using DistClip.Checkpoints;
using Microsoft.Extensions.Logging;

namespace DistClip.Worker;

/// <summary>
/// Checkpoints this worker process could not write (as rank 0), counted across its generations: a
/// failed write is logged, the previous checkpoint stays and training goes on, and the next
/// interval tries again; <c>checkpoint_failures</c> in a row end the run with a
/// <see cref="CheckpointWriteException"/>. The store counts every failure in its metric
/// (<c>distclip_checkpoint_failures_total</c>).
/// </summary>
internal sealed partial class CheckpointFailures(ILogger logger)
{
    private int _inARow;

    /// <summary>Failed writes over this process's life (rank 0's goes into the run's summary).</summary>
    public int Total { get; private set; }

    public void Succeeded() => _inARow = 0;

    /// <summary>Counts a failed write of <paramref name="step"/> to <paramref name="directory"/>.</summary>
    /// <exception cref="CheckpointWriteException">The <paramref name="limit"/>-th failure in a row.</exception>
    public void Failed(long step, string directory, Exception error, int limit)
    {
        _inARow++;
        Total++;
        LogFailed(logger, step, directory, error.Message, _inARow, limit);
        if (_inARow >= limit)
        {
            throw new CheckpointWriteException(directory, _inARow, error);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Checkpoint of step {Step} could not be written to {Directory}: {Error}; the previous checkpoint stays and training goes on ({InARow} in a row of checkpoint_failures {Limit})")]
    private static partial void LogFailed(ILogger logger, long step, string directory, string error, int inARow, int limit);
}

using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Launchers;

/// <summary>The launcher's log lines.</summary>
public abstract partial class WorkerLauncher
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Started worker slot {Slot} (pid {Pid}) for {Host}")]
    private static partial void LogStarted(ILogger logger, int slot, int pid, string host);

    [LoggerMessage(Level = LogLevel.Information, Message = "Started worker slot {Slot} (pid {Pid}) for {Host} with CUDA_VISIBLE_DEVICES={Gpu}")]
    private static partial void LogStartedOnGpu(ILogger logger, int slot, int pid, string host, string gpu);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker slot {Slot} (pid {Pid}) exited with status {Code} after the run ended")]
    private static partial void LogExitedAfterEnd(ILogger logger, int slot, int pid, int code);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker slot {Slot} (pid {Pid}) exited with status {Code} before the run ended")]
    private static partial void LogExited(ILogger logger, int slot, int pid, int code);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker slot {Slot} (pid {Pid}) exited, but its output did not end within {Seconds:F0} s (a process it left behind holds it?); handling the exit without it")]
    private static partial void LogOutputNotDrained(ILogger logger, int slot, int pid, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killing worker slot {Slot} (pid {Pid}): {Why}")]
    private static partial void LogKillingLost(ILogger logger, int slot, int pid, string why);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killing worker pid {Pid}: still running {GraceSeconds:F0} s after the run ended")]
    private static partial void LogKillingAfterEnd(ILogger logger, int pid, double graceSeconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "Worker pid {Pid} is still there {Seconds:F0} s after SIGKILL (uninterruptible I/O?); leaving it")]
    private static partial void LogNotGone(ILogger logger, int pid, double seconds);
}

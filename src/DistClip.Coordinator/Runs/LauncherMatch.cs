namespace DistClip.Coordinator.Runs;

/// <summary>A worker process a launcher saw exit before the run ended.</summary>
/// <param name="Slot">The launcher's slot, which it passed to the worker as its preferred rank.</param>
/// <param name="Host">The host the launcher started it on.</param>
/// <param name="Pid">The process id the launcher knows it by.</param>
public sealed record WorkerExit(int Slot, string Host, int Pid, int ExitCode);

/// <summary>
/// Which joiner or member a launcher's process is, and which of their losses are already counted. A
/// launcher knows its own process (pid, host) and the slot it gave as preferred rank; a remote worker
/// (ssh) reports another pid and host name, so there the slot is what matches it.
/// </summary>
internal sealed class LauncherMatch
{
    // Members lost through their heartbeat (broken stream, timeout) whose process exit the launcher
    // has not reported yet: that report must not count a second restart.
    private readonly HashSet<Key> _lost = [];

    public static bool IsProcessOf(WorkerExit exit, WorkerIdentity worker) =>
        (worker.Pid == exit.Pid && worker.Host == exit.Host) || (exit.Slot >= 0 && worker.PreferredRank == exit.Slot);

    /// <summary>A member was lost and its restart counted.</summary>
    public void Lost(WorkerIdentity worker) => _lost.Add(worker.PreferredRank >= 0 ? Key.OfSlot(worker.PreferredRank) : Key.OfProcess(worker.Host, worker.Pid));

    /// <summary>Whether this exit is of a member already lost (forgetting it: a slot's next process is news again).</summary>
    public bool AlreadyLost(WorkerExit exit) => _lost.Remove(exit.Slot >= 0 ? Key.OfSlot(exit.Slot) : Key.OfProcess(exit.Host, exit.Pid));

    private readonly record struct Key(int Slot, string? Host, int Pid)
    {
        public static Key OfSlot(int slot) => new(slot, null, 0);

        public static Key OfProcess(string host, int pid) => new(-1, host, pid);
    }
}

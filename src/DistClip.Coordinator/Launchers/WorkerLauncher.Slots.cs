using System.Diagnostics;

namespace DistClip.Coordinator.Launchers;

/// <summary>What the launcher keeps per slot: its current process, and that process's log.</summary>
public abstract partial class WorkerLauncher
{
    /// <summary>A slot's current process, how many members the run had lost when it started, and its log.</summary>
    private sealed class SlotProcess(Process process, long lossesBefore, WorkerLog log)
    {
        private int _exitClaimed;

        public Process Process => process;

        public long LossesBefore => lossesBefore;

        public WorkerLog Log => log;

        /// <summary>The worker's last "error: ..." line on standard error.</summary>
        public string? Error { get; set; }

        public bool ExitClaimed => Volatile.Read(ref _exitClaimed) != 0;

        /// <summary>True for the first caller only: the one that handles the exit.</summary>
        public bool ClaimExit() => Interlocked.Exchange(ref _exitClaimed, 1) == 0;
    }

    /// <summary>A worker's log file; lines that arrive after it is closed (a drain that timed out) are dropped.</summary>
    private sealed class WorkerLog(string path)
    {
        private readonly StreamWriter _writer = new(path, append: true) { AutoFlush = true };
        private readonly Lock _gate = new();
        private bool _closed;

        public string Path => path;

        public void Write(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_gate)
            {
                if (!_closed)
                {
                    _writer.WriteLine(line);
                }
            }
        }

        public void Close()
        {
            lock (_gate)
            {
                if (!_closed)
                {
                    _closed = true;
                    _writer.Dispose();
                }
            }
        }
    }
}

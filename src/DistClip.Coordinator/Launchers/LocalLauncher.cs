using System.Diagnostics;
using System.Globalization;
using DistClip.Control;
using DistClip.Coordinator.Runs;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Launchers;

/// <summary>
/// Starts the run's workers as child processes of this machine, one per slot, and replaces one that
/// exits before the run is over (as long as the coordinator allows another restart). Each worker gets
/// cores / workers libtorch threads and OMP_WAIT_POLICY=PASSIVE in its environment, which is the only
/// way that setting reaches libtorch (TORCHSHARP.md). Worker output goes to
/// <c>&lt;run dir&gt;/logs/worker-&lt;slot&gt;.log</c>.
/// </summary>
public sealed partial class LocalLauncher : IAsyncDisposable
{
    private readonly RunCoordinator _run;
    private readonly Uri _coordinator;
    private readonly ILogger _logger;
    private readonly string _logDirectory;
    private readonly int _threads;
    private readonly Lock _lock = new();
    private readonly Dictionary<int, Process> _processes = [];
    private bool _stopping;

    public LocalLauncher(RunCoordinator run, Uri coordinator, ILogger logger)
    {
        _run = run;
        _coordinator = coordinator;
        _logger = logger;
        _logDirectory = Path.Combine(run.Settings.RunDirectory, "logs");
        _threads = run.Settings.Training.Threads > 0
            ? run.Settings.Training.Threads
            : Math.Max(1, Environment.ProcessorCount / run.Settings.WorldSize);
    }

    /// <summary>The worker program: worker.dll beside this program (the coordinator's build output carries it).</summary>
    public static string WorkerDll => Path.Combine(AppContext.BaseDirectory, "worker.dll");

    public IReadOnlyDictionary<int, int> ProcessIds
    {
        get
        {
            lock (_lock)
            {
                return _processes.ToDictionary(p => p.Key, p => p.Value.Id);
            }
        }
    }

    public void Start()
    {
        Directory.CreateDirectory(_logDirectory);
        for (int slot = 0; slot < _run.Settings.WorldSize; slot++)
        {
            StartSlot(slot);
        }
    }

    private void StartSlot(int slot)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        psi.ArgumentList.Add(WorkerDll);
        psi.ArgumentList.Add("--coordinator");
        psi.ArgumentList.Add(_coordinator.ToString());
        psi.ArgumentList.Add("--preferred-rank");
        psi.ArgumentList.Add(slot.ToString(CultureInfo.InvariantCulture));
        psi.Environment[RunSecret.EnvironmentVariable] = _run.Settings.Secret;
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        psi.Environment["OMP_NUM_THREADS"] = _threads.ToString(CultureInfo.InvariantCulture);
        psi.Environment["DISTCLIP_THREADS"] = _threads.ToString(CultureInfo.InvariantCulture);

        lock (_lock)
        {
            if (_stopping)
            {
                return;
            }

            var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
            var log = new StreamWriter(Path.Combine(_logDirectory, $"worker-{slot}.log"), append: true) { AutoFlush = true };
            process.OutputDataReceived += (_, e) => Write(log, e.Data);
            process.ErrorDataReceived += (_, e) => Write(log, e.Data);
            process.Exited += (_, _) => OnExited(slot, process, log);
            process.Start();
            // Closing stdin tells the worker nothing; keeping it lets the worker notice its parent dying.
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _processes[slot] = process;
            LogStarted(_logger, slot, process.Id, _threads);
        }
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            log.WriteLine(line);
        }
    }

    private void OnExited(int slot, Process process, StreamWriter log)
    {
        process.WaitForExit(); // drains the redirected output into the log
        int code = process.ExitCode;
        int pid = process.Id;
        lock (log)
        {
            log.Dispose();
        }

        lock (_lock)
        {
            if (_processes.TryGetValue(slot, out var current) && current == process)
            {
                _processes.Remove(slot);
            }

            if (_stopping)
            {
                return;
            }
        }

        if (_run.Completion.IsCompleted)
        {
            return;
        }

        LogExited(_logger, slot, pid, code);
        if (_run.WorkerExited(slot, Environment.MachineName, pid, code))
        {
            StartSlot(slot);
        }
    }

    /// <summary>Kills a slot's worker outright (SIGKILL), as a crash would.</summary>
    public void Kill(int slot)
    {
        lock (_lock)
        {
            if (_processes.TryGetValue(slot, out var p))
            {
                p.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>Waits for the workers to exit after the run ended, then kills any that linger.</summary>
    public async ValueTask DisposeAsync()
    {
        List<Process> remaining;
        lock (_lock)
        {
            _stopping = true;
            remaining = [.. _processes.Values];
        }

        foreach (var p in remaining)
        {
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try
            {
                await p.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Started worker slot {Slot} (pid {Pid}, {Threads} threads)")]
    private static partial void LogStarted(ILogger logger, int slot, int pid, int threads);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker slot {Slot} (pid {Pid}) exited with status {Code} before the run ended")]
    private static partial void LogExited(ILogger logger, int slot, int pid, int code);
}

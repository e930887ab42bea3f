using System.Diagnostics;
using DistClip.Coordinator.Runs;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Launchers;

/// <summary>
/// Starts one worker process per slot and replaces one that exits before the run is over (as long
/// as the coordinator allows another restart). Subclasses say how a slot's process is started: here
/// (<see cref="LocalLauncher"/>) or on another host over ssh (<see cref="SshLauncher"/>). Worker output
/// goes to <c>&lt;run dir&gt;/logs/worker-&lt;slot&gt;.log</c>. A slot keeps its GPU (<see cref="GpuPlacement"/>)
/// across replacements. A worker that exits 2 refused its configuration, which a replacement would
/// refuse again: the run fails at once with the worker's error. A worker the membership declares lost
/// while its process is still there (stopped, stuck) is killed, so that its replacement starts at once;
/// once the run is over, workers that do not exit within a grace period are killed too.
/// </summary>
public abstract partial class WorkerLauncher : IAsyncDisposable
{
    /// <summary>The worker's exit status for a configuration it cannot run (WorkerExitCodes.BadArguments).</summary>
    private const int WorkerBadConfiguration = 2;

    private readonly Membership _run;
    private readonly IReadOnlyList<string>? _slotGpus;
    private readonly ILogger _logger;
    private readonly string _logDirectory;
    private readonly Lock _lock = new();
    private readonly Dictionary<int, SlotProcess> _processes = [];
    private readonly Timer _reaper;
    private bool _stopping;

    /// <summary>How long a killed worker may take to be gone before the coordinator stops waiting for it.</summary>
    private static readonly TimeSpan KillBound = TimeSpan.FromSeconds(5);

    /// <summary>How often the launcher looks for an exited process whose exit it has not handled.</summary>
    private static readonly TimeSpan ReapInterval = TimeSpan.FromSeconds(2);

    /// <summary>How long an exited worker's output may take to reach its log before the exit is handled anyway.</summary>
    internal TimeSpan DrainBound { get; init; } = TimeSpan.FromSeconds(10);

    /// <param name="slotGpus">The CUDA_VISIBLE_DEVICES of each slot; null leaves the workers' environment alone.</param>
    protected WorkerLauncher(Membership run, IReadOnlyList<string>? slotGpus, ILogger logger)
    {
        _run = run;
        _slotGpus = slotGpus;
        _logger = logger;
        _logDirectory = Path.Combine(run.Settings.RunDirectory, "logs");
        _reaper = new Timer(_ => Reap());
        run.MemberLost += OnMemberLost;
    }

    /// <summary>The worker program: worker.dll beside this program (the coordinator's build output carries it).</summary>
    public static string WorkerDll => Path.Combine(AppContext.BaseDirectory, "worker.dll");

    protected Membership Run => _run;

    /// <summary>Each slot's TLS material (<see cref="WorkerTls"/>); null: the workers speak h2c.</summary>
    public Func<int, WorkerTls>? Tls { get; init; }

    /// <summary>How many slots this launcher fills.</summary>
    protected virtual int Slots => _run.Settings.WorldSize;

    /// <summary>How the process of <paramref name="slot"/> is started.</summary>
    protected abstract ProcessStartInfo StartInfo(int slot);

    /// <summary>What the tests check: the process a slot would start, its environment included.</summary>
    internal ProcessStartInfo StartInfoOf(int slot) => StartInfo(slot);

    /// <summary>The CUDA_VISIBLE_DEVICES the slot's worker gets; null: none is set.</summary>
    protected string? GpuOf(int slot) => _slotGpus?[slot];

    /// <summary>The host name the worker of a slot reports when it joins (for matching its exit to its membership).</summary>
    protected abstract string HostOf(int slot);

    /// <summary>Called once the slot's process runs, e.g. to hand it the secret on its standard input.</summary>
    protected virtual void Started(Process process, int slot)
    {
    }

    /// <summary>What the tests call: <see cref="Started"/> on a process of their own.</summary>
    internal void StartedOf(Process process, int slot) => Started(process, slot);

    /// <summary>
    /// Whether <paramref name="process"/>, this launcher's process of the worker's slot, is that worker.
    /// Only a local launcher can tell by process id; a remote worker's id is another host's.
    /// </summary>
    protected virtual bool IsProcessOf(WorkerIdentity worker, Process process) => true;

    public IReadOnlyDictionary<int, int> ProcessIds
    {
        get
        {
            lock (_lock)
            {
                return _processes.ToDictionary(p => p.Key, p => p.Value.Process.Id);
            }
        }
    }

    public void Start()
    {
        Directory.CreateDirectory(_logDirectory);
        for (int slot = 0; slot < Slots; slot++)
        {
            StartSlot(slot);
        }

        _reaper.Change(ReapInterval, ReapInterval);
    }

    private void StartSlot(int slot)
    {
        var psi = StartInfo(slot);
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        long losses = _run.Losses; // a loss declared from here on is not this process's
        lock (_lock)
        {
            if (_stopping)
            {
                return;
            }

            var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
            string logPath = Path.Combine(_logDirectory, $"worker-{slot}.log");
            var started = new SlotProcess(process, losses, new WorkerLog(logPath));
            // The worker's own "error: ..." line, which says why it refused its configuration.
            const string ErrorPrefix = "error: ";
            process.OutputDataReceived += (_, e) => started.Log.Write(e.Data);
            process.ErrorDataReceived += (_, e) =>
            {
                started.Log.Write(e.Data);
                if (e.Data?.StartsWith(ErrorPrefix, StringComparison.Ordinal) == true)
                {
                    started.Error = e.Data[ErrorPrefix.Length..];
                }
            };
            // Off the event's thread: Process raises Exited holding its own lock, and the handling
            // waits (boundedly) for the output and may start a replacement.
            process.Exited += (_, _) => _ = Task.Run(() => HandleExitAsync(slot, started));
            process.Start();
            Started(process, slot);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _processes[slot] = started;
            if (GpuOf(slot) is { } gpu)
            {
                LogStartedOnGpu(_logger, slot, process.Id, HostOf(slot), gpu);
            }
            else
            {
                LogStarted(_logger, slot, process.Id, HostOf(slot));
            }
        }
    }

    /// <summary>
    /// The backstop for an exit whose Exited event never comes: every <see cref="ReapInterval"/>,
    /// a slot's process that has exited (HasExited reaps it with waitpid if nothing else has) and
    /// whose exit is not being handled yet is handled here.
    /// </summary>
    private void Reap()
    {
        List<(int Slot, SlotProcess Started)> exited;
        lock (_lock)
        {
            if (_stopping)
            {
                return;
            }

            exited = [.. _processes.Where(p => !p.Value.ExitClaimed && p.Value.Process.HasExited).Select(p => (p.Key, p.Value))];
        }

        foreach (var (slot, started) in exited)
        {
            _ = Task.Run(() => HandleExitAsync(slot, started));
        }
    }

    /// <summary>
    /// A slot's process exited: wait for its output to reach the log, at most <see cref="DrainBound"/>
    /// (a process it left behind may hold its pipes open for good), then report the exit and start a
    /// replacement when the run wants one. Runs once per process, whoever saw the exit first.
    /// </summary>
    private async Task HandleExitAsync(int slot, SlotProcess started)
    {
        if (!started.ClaimExit())
        {
            return;
        }

        var process = started.Process;
        using (var drain = new CancellationTokenSource(DrainBound))
        {
            try
            {
                await process.WaitForExitAsync(drain.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                LogOutputNotDrained(_logger, slot, process.Id, DrainBound.TotalSeconds);
            }
        }

        started.Log.Close();
        try
        {
            OnExited(slot, started);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or IOException)
        {
            // A replacement that cannot be started ends the run with the reason, not the coordinator.
            _run.Fail($"worker slot {slot} could not be restarted on {HostOf(slot)}: {e.Message}");
        }
    }

    private void OnExited(int slot, SlotProcess started)
    {
        var process = started.Process;
        int code = process.ExitCode;
        int pid = process.Id;
        bool stopping;
        lock (_lock)
        {
            if (_processes.TryGetValue(slot, out var current) && current == started)
            {
                _processes.Remove(slot);
            }

            stopping = _stopping;
        }

        if (stopping || _run.Completion.IsCompleted)
        {
            if (code != 0)
            {
                // After the run ended a non-zero exit changes nothing, but it is still worth knowing.
                LogExitedAfterEnd(_logger, slot, pid, code);
            }

            return;
        }

        LogExited(_logger, slot, pid, code);
        if (code == WorkerBadConfiguration)
        {
            string why = started.Error ?? $"see {started.Log.Path}";
            _run.Fail($"worker slot {slot} (pid {pid} on {HostOf(slot)}) refused its configuration (exit {code}); a replacement would too: {why}");
            return;
        }

        if (_run.WorkerExited(new WorkerExit(slot, HostOf(slot), pid, code)))
        {
            StartSlot(slot);
        }
    }

    /// <summary>Kills a slot's worker outright (SIGKILL), as a crash would.</summary>
    public void Kill(int slot)
    {
        lock (_lock)
        {
            if (_processes.TryGetValue(slot, out var started))
            {
                TryKill(started.Process);
            }
        }
    }

    /// <summary>
    /// The membership lost a worker: if its process is still there (stopped, stuck), SIGKILL it, which
    /// ends a stopped process too, so that its exit is seen and its replacement starts at once. Only a
    /// process started before the loss is that worker's: a replacement already started stays. If it has
    /// exited already and its exit is not being handled yet, it is handled now.
    /// </summary>
    private void OnMemberLost(LostMember lost)
    {
        int slot = lost.Worker.PreferredRank;
        SlotProcess? exited = null;
        lock (_lock)
        {
            if (!_stopping && _processes.TryGetValue(slot, out var started) && started.LossesBefore < lost.Loss
                && IsProcessOf(lost.Worker, started.Process))
            {
                if (!started.Process.HasExited)
                {
                    LogKillingLost(_logger, slot, started.Process.Id, lost.Why);
                    TryKill(started.Process);
                }
                else if (!started.ExitClaimed)
                {
                    exited = started;
                }
            }
        }

        if (exited is not null)
        {
            _ = Task.Run(() => HandleExitAsync(slot, exited));
        }
    }

    /// <summary>
    /// Once the run is over: waits up to <paramref name="grace"/> in all for the workers to exit (they
    /// have been told to stop), then kills those left, whatever they are blocked in, and waits a
    /// bounded time for them to be gone. Every wait has a bound: a process the kernel cannot end (stuck
    /// in uninterruptible I/O) is reported and left behind.
    /// </summary>
    public async Task StopAsync(TimeSpan grace)
    {
        List<Process> remaining;
        lock (_lock)
        {
            _stopping = true;
            remaining = [.. _processes.Values.Select(s => s.Process)];
        }

        await _reaper.DisposeAsync().ConfigureAwait(false);

        await WaitForExitAsync(remaining, grace).ConfigureAwait(false);
        var left = remaining.Where(p => !p.HasExited).ToList();
        foreach (var p in left)
        {
            LogKillingAfterEnd(_logger, p.Id, grace.TotalSeconds);
            TryKill(p);
        }

        await WaitForExitAsync(left, KillBound).ConfigureAwait(false);
        foreach (var p in left.Where(p => !p.HasExited))
        {
            LogNotGone(_logger, p.Id, KillBound.TotalSeconds);
        }
    }

    /// <summary>Stops the workers (<see cref="StopAsync"/>) with the grace of a run that ended normally.</summary>
    public async ValueTask DisposeAsync()
    {
        _run.MemberLost -= OnMemberLost;
        await StopAsync(TimeSpan.FromSeconds(20)).ConfigureAwait(false);
    }

    private static async Task WaitForExitAsync(IReadOnlyList<Process> processes, TimeSpan bound)
    {
        using var deadline = new CancellationTokenSource(bound);
        try
        {
            await Task.WhenAll(processes.Select(p => p.WaitForExitAsync(deadline.Token))).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The caller looks at which have exited.
        }
    }

    private static void TryKill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // It exited meanwhile, or is not ours to kill any more.
        }
    }
}

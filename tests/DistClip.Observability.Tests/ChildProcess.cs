using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace DistClip.Observability.Tests;

/// <summary>
/// A real program as a child process whose output is read as it comes, so a test waits for a line
/// (an event) with a deadline instead of sleeping.
/// </summary>
internal sealed partial class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Seen)> _waiters = [];
    private readonly Lock _lock = new();

    private ChildProcess(Process process, string name)
    {
        _process = process;
        Name = name;
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Name { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>stdout and stderr, interleaved as the lines came.</summary>
    public string Output
    {
        get
        {
            lock (_lock)
            {
                return _output.ToString();
            }
        }
    }

    public static ChildProcess Start(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        return new ChildProcess(Process.Start(psi)!, Path.GetFileName(program));
    }

    /// <summary>Waits for a line matching <paramref name="pattern"/> (earlier lines count); fails if the process exits first.</summary>
    public async Task<Match> WaitForLineAsync(string pattern, TimeSpan deadline)
    {
        var regex = new Regex(pattern);
        var seen = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            foreach (string line in _output.ToString().Split('\n'))
            {
                var m = regex.Match(line);
                if (m.Success)
                {
                    return m;
                }
            }

            _waiters.Add((regex, seen));
        }

        Task first;
        try
        {
            first = await Task.WhenAny(seen.Task, _process.WaitForExitAsync()).WaitAsync(deadline).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name}: no line matching /{pattern}/ within {deadline}.\noutput:\n{Output}");
        }

        if (first != seen.Task)
        {
            _process.WaitForExit(); // the line may be among the last ones read
            if (!seen.Task.IsCompleted)
            {
                throw new InvalidOperationException($"{Name} exited with status {_process.ExitCode} before a line matching /{pattern}/.\noutput:\n{Output}");
            }
        }

        return await seen.Task.ConfigureAwait(false);
    }

    /// <summary>Waits for the process to exit on its own and returns its status.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan deadline)
    {
        using var cts = new CancellationTokenSource(deadline);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{Name} did not exit within {deadline}.\noutput:\n{Output}");
        }

        _process.WaitForExit(); // drains the output events
        return _process.ExitCode;
    }

    /// <summary>SIGTERM by process id (a clean shutdown), then waits; SIGKILL if it lingers past <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }

        _ = Kill(_process.Id, SigTerm);
        using var cts = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lock)
        {
            _output.Append(line).Append('\n');
            foreach (var (pattern, seen) in _waiters)
            {
                var m = pattern.Match(line);
                if (m.Success)
                {
                    seen.TrySetResult(m);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        }

        _process.Dispose();
    }

    private const int SigTerm = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}

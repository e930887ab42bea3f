using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// The real <c>coordinator</c> program as a child process, as a user runs it: its output is read as
/// it comes, so a test can wait for a line (an event) with a deadline instead of sleeping.
/// </summary>
internal sealed class CoordinatorProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Seen)> _waiters = [];
    private readonly Lock _lock = new();

    private CoordinatorProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => OnLine(_stdout, e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(_stderr, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>The program's process id (to signal it as a user or a scheduler would).</summary>
    public int Id => _process.Id;

    /// <summary>The coordinator's own build output (the project reference guarantees it is built).</summary>
    public static string DllPath
    {
        get
        {
            string configuration = typeof(CoordinatorProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
            string? dir = AppContext.BaseDirectory;
            while (dir is not null && !File.Exists(Path.Combine(dir, "DistClip.sln")))
            {
                dir = Path.GetDirectoryName(dir);
            }

            return Path.Combine(dir ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory),
                "src", "DistClip.Coordinator", "bin", configuration, "net10.0", "coordinator.dll");
        }
    }

    public string Stdout
    {
        get
        {
            lock (_lock)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_lock)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Any program (a worker, a coordinator inside a network namespace) with the same output handling.</summary>
    public static CoordinatorProcess Start(ProcessStartInfo psi)
    {
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        return new CoordinatorProcess(Process.Start(psi)!);
    }

    public static string WorkerDllPath => Path.Combine(Path.GetDirectoryName(DllPath)!, "worker.dll");

    public static CoordinatorProcess Start(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(DllPath);
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        return new CoordinatorProcess(Process.Start(psi)!);
    }

    public static async Task<Result> RunAsync(TimeSpan deadline, params string[] args)
    {
        await using var process = Start(null, args);
        return await process.WaitAsync(deadline);
    }

    /// <summary>Waits for a line of stdout or stderr matching <paramref name="pattern"/> (earlier lines count).</summary>
    public async Task<Match> WaitForLineAsync(string pattern, TimeSpan deadline)
    {
        var regex = new Regex(pattern, RegexOptions.Multiline);
        var seen = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            var already = regex.Match(_stdout.ToString() + "\n" + _stderr.ToString());
            if (already.Success)
            {
                return already;
            }

            _waiters.Add((regex, seen));
        }

        try
        {
            return await seen.Task.WaitAsync(deadline);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"no line matching /{pattern}/ within {deadline}.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        }
    }

    public async Task<Result> WaitAsync(TimeSpan deadline)
    {
        using var cts = new CancellationTokenSource(deadline);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            throw new TimeoutException($"coordinator did not finish within {deadline}.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        }

        _process.WaitForExit(); // drain the output events
        return new Result(_process.ExitCode, Stdout, Stderr);
    }

    private void OnLine(StringBuilder sink, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lock)
        {
            sink.AppendLine(line);
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

    public ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
        return ValueTask.CompletedTask;
    }
}

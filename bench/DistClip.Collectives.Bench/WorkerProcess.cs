using System.Diagnostics;
using System.Reflection;
using System.Threading.Channels;

namespace DistClip.Collectives.Bench;

/// <summary>A benchmark worker: this same program started again in worker mode, driven over stdin/stdout.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(5);
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();

    private WorkerProcess(Process process)
    {
        _process = process;
        _ = PumpAsync();
    }

    public static WorkerProcess Start(params string[] arguments)
    {
        // Under `dotnet app.dll` the host is dotnet and the app is the entry assembly; under an apphost it is the process itself.
        string host = Environment.ProcessPath!;
        var start = new ProcessStartInfo(host) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        }

        start.ArgumentList.Add(CollectivesBenchmark.WorkerFlag);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return new WorkerProcess(Process.Start(start)!);
    }

    public void Send(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>The next line's words after <paramref name="tag"/>; an ERR line or a deadline throws.</summary>
    public async Task<string[]> ExpectAsync(string tag, CancellationToken cancellationToken) =>
        (await ExpectAnyAsync([tag], cancellationToken)).Words;

    /// <summary>The next line, which must start with one of <paramref name="tags"/>: its tag and the words after it.</summary>
    public async Task<(string Tag, string[] Words)> ExpectAnyAsync(IReadOnlyCollection<string> tags, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(Deadline);
        string line = await _lines.Reader.ReadAsync(deadline.Token);
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0 || !tags.Contains(words[0]))
        {
            throw new InvalidOperationException($"A benchmark worker said '{line}' where '{string.Join("|", tags)} ...' was expected.");
        }

        return (words[0], words[1..]);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                Send("exit");
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (Exception)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process.Dispose();
    }

    private async Task PumpAsync()
    {
        while (await _process.StandardOutput.ReadLineAsync() is { } line)
        {
            await _lines.Writer.WriteAsync(line);
        }

        _lines.Writer.TryComplete(new InvalidOperationException("A benchmark worker exited."));
    }
}

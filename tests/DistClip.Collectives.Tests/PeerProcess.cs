using System.Diagnostics;
using System.Threading.Channels;

namespace DistClip.Collectives.Tests;

/// <summary>One test-peer process: lines in over stdin, lines out over stdout, read with deadlines.</summary>
internal sealed class PeerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();

    private PeerProcess(int rank, Process process)
    {
        Rank = rank;
        _process = process;
        _ = PumpAsync();
    }

    public int Rank { get; }

    public int Port { get; private set; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public static async Task<PeerProcess> StartAsync(int rank, string secret, TimeSpan operationTimeout, TimeSpan deadline)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "DistClip.Collectives.TestPeer.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = false,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { dll, "--rank", rank.ToString(), "--secret", secret, "--timeout-ms", ((int)operationTimeout.TotalMilliseconds).ToString() })
        {
            start.ArgumentList.Add(arg);
        }

        var peer = new PeerProcess(rank, Process.Start(start)!);
        var line = await peer.ExpectAsync("PORT", deadline);
        peer.Port = int.Parse(line.Split(' ')[1]);
        return peer;
    }

    public void Send(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>The next line, which must start with <paramref name="prefix"/>; fails at the deadline.</summary>
    public async Task<string> ExpectAsync(string prefix, TimeSpan deadline)
    {
        using var cts = new CancellationTokenSource(deadline);
        string line;
        try
        {
            line = await _lines.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"rank {Rank}: no '{prefix}' line within {deadline}.");
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException($"rank {Rank} exited (code {ExitCode()}) before printing '{prefix}'.");
        }

        Assert.True(line.StartsWith(prefix, StringComparison.Ordinal), $"rank {Rank}: expected a line starting '{prefix}', got '{line}'");
        return line;
    }

    public void Kill() => _process.Kill(entireProcessTree: true); // SIGKILL on Linux

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                Send("exit");
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (Exception)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process.Dispose();
    }

    private string ExitCode() => _process.HasExited ? _process.ExitCode.ToString() : "running";

    private async Task PumpAsync()
    {
        while (await _process.StandardOutput.ReadLineAsync() is { } line)
        {
            await _lines.Writer.WriteAsync(line);
        }

        _lines.Writer.TryComplete();
    }
}

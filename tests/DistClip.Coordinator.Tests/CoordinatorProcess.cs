using System.Diagnostics;
using System.Reflection;

namespace DistClip.Coordinator.Tests;

/// <summary>Runs the real <c>coordinator</c> program as a child process, as a user would.</summary>
internal static class CoordinatorProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

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

    public static async Task<Result> RunAsync(TimeSpan deadline, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(DllPath);
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(deadline);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"coordinator {string.Join(' ', args)} did not finish within {deadline}; stderr so far: {await stderr}");
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }
}

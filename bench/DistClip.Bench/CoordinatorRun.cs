using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace DistClip.Bench;

/// <summary>How one <c>coordinator launch</c> ended, as a benchmark sees it.</summary>
public sealed record CoordinatorRunResult(int? ExitCode, bool TimedOut, bool StoppedForMemory, string Stdout, string Stderr, double WallSeconds, long ObservedPeakRssBytes);

/// <summary>
/// Runs the real <c>coordinator</c> program (from this benchmark's output folder) under a time
/// limit, and stops it, workers and all, when the machine is about to run out of memory: on a
/// shared machine without swap a row that outgrows RAM would otherwise wake the kernel's OOM
/// killer, which may pick someone else's process. While it runs, the workers' peak RSS is sampled
/// from /proc, so a run that ends without a summary still says how far it got.
/// </summary>
public static class CoordinatorRun
{
    /// <summary>Below this much available memory (MemAvailable) the run is stopped.</summary>
    public const long MemoryFloorBytes = 1L << 30;

    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The coordinator's own build output, where its build ships the worker beside it (a project
    /// that references the coordinator gets its assembly, not the worker): the project reference
    /// guarantees it is built, in this program's configuration.
    /// </summary>
    public static string CoordinatorDll
    {
        get
        {
            string configuration = typeof(CoordinatorRun).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
            return Path.Combine(RepositoryRoot, "src", "DistClip.Coordinator", "bin", configuration, "net10.0", "coordinator.dll");
        }
    }

    /// <summary>The checkout this benchmark was built from: the folder above its output that holds DistClip.sln.</summary>
    public static string RepositoryRoot
    {
        get
        {
            string? dir = AppContext.BaseDirectory;
            while (dir is not null && !File.Exists(Path.Combine(dir, "DistClip.sln")))
            {
                dir = Path.GetDirectoryName(dir);
            }

            return dir ?? throw new InvalidOperationException("the repository root (DistClip.sln) is not above " + AppContext.BaseDirectory);
        }
    }

    public static async Task<CoordinatorRunResult> RunAsync(IReadOnlyList<string> arguments, TimeSpan limit, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(CoordinatorDll);
        foreach (string a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        var wall = Stopwatch.StartNew();
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the coordinator");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        var children = new ChildMemory(process.Id);
        bool timedOut = false, stoppedForMemory = false;
        try
        {
            using var timer = new PeriodicTimer(SampleInterval);
            var exited = process.WaitForExitAsync(ct);
            while (!exited.IsCompleted)
            {
                await Task.WhenAny(exited, timer.WaitForNextTickAsync(ct).AsTask()).ConfigureAwait(false);
                if (exited.IsCompleted)
                {
                    break;
                }

                children.Sample();
                timedOut = wall.Elapsed > limit;
                stoppedForMemory = AvailableBytes() is long available && available < MemoryFloorBytes;
                if (timedOut || stoppedForMemory)
                {
                    process.Kill(entireProcessTree: true);
                    break;
                }
            }

            await process.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            // Cancelled (Ctrl+C on the benchmark): leave no coordinator or worker behind.
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        wall.Stop();
        return new CoordinatorRunResult(timedOut || stoppedForMemory ? null : process.ExitCode, timedOut, stoppedForMemory,
            await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false), wall.Elapsed.TotalSeconds, children.MaxPeakBytes);
    }

    /// <summary>MemAvailable from /proc/meminfo in bytes; null where there is none.</summary>
    private static long? AvailableBytes() => KibField("/proc/meminfo", "MemAvailable:");

    /// <summary>A "Name:   123 kB" line of a /proc file, in bytes; null when the file or line is missing.</summary>
    internal static long? KibField(string path, string name)
    {
        try
        {
            foreach (string line in File.ReadLines(path))
            {
                if (line.StartsWith(name, StringComparison.Ordinal))
                {
                    string[] parts = line[name.Length..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    return parts.Length == 2 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kib) ? kib * 1024 : null;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The process exited between listing and reading, or this is not Linux.
        }

        return null;
    }

    /// <summary>The direct children of one process (the coordinator's workers) and the largest peak RSS seen among them.</summary>
    private sealed class ChildMemory(int parent)
    {
        private readonly Dictionary<int, long> _peaks = [];

        public long MaxPeakBytes => _peaks.Values.DefaultIfEmpty(0).Max();

        public void Sample()
        {
            if (!Directory.Exists("/proc"))
            {
                return;
            }

            foreach (string dir in Directory.EnumerateDirectories("/proc"))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && ParentOf(dir) == parent
                    && KibField(Path.Combine(dir, "status"), "VmHWM:") is long peak)
                {
                    _peaks[pid] = Math.Max(peak, _peaks.GetValueOrDefault(pid));
                }
            }
        }

        /// <summary>The 4th field of /proc/PID/stat, after the command name in parentheses (which may itself hold spaces).</summary>
        private static int? ParentOf(string dir)
        {
            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                string[] after = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return after.Length > 1 && int.TryParse(after[1], NumberStyles.None, CultureInfo.InvariantCulture, out int ppid) ? ppid : null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }
    }
}

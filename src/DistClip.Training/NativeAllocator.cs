using System.Runtime.InteropServices;

namespace DistClip.Training;

/// <summary>
/// Keeps glibc's malloc from handing libtorch's CPU tensors fresh pages on every step.
/// </summary>
/// <remarks>
/// libtorch allocates CPU tensors with plain malloc. glibc serves a request of at least its mmap
/// threshold (128 KiB at first, raised as mapped chunks are freed, up to 32 MiB) with a fresh mapping,
/// and hands the top of a heap back to the kernel once more than the trim threshold lies free there.
/// A training step allocates and frees hundreds of MiB of activations and gradients, and on the
/// training thread (not the process's main thread, so not the main arena) the dynamic thresholds
/// never settled: measured with clip-tiny at batch 256 on 2 threads, about 100,000 page faults per
/// step (400 MiB of pages the kernel maps and zeroes), backward 1.3–1.7 s. With the mmap threshold
/// fixed at glibc's maximum, 32 MiB, and the trim threshold at 1 GiB, freed blocks are reused: backward
/// 0.80 s, 191–201 samples/s against 118–141 in the same session (<c>dotnet run -c Release --project
/// bench/DistClip.Bench -- train --threads 2 --batch 256</c>). The cost: memory freed below the
/// top of a heap stays with the process, up to its peak, which it reaches on every step anyway. A top
/// pad of 64 MiB keeps the training thread's arena from deleting and remaking its heaps as they empty.
/// A user who sets <c>MALLOC_MMAP_THRESHOLD_</c>, <c>MALLOC_TRIM_THRESHOLD_</c> or a
/// <c>glibc.malloc</c> tunable keeps their own settings. Not glibc (musl, macOS, Windows): nothing is done.
/// <para>
/// Those settings trade memory for speed: freed blocks stay in glibc's heap, which fragments, and
/// with gradient accumulation a worker's peak grew by up to 1 GiB over glibc's defaults. Better than
/// both is gperftools' tcmalloc, which the worker preloads when it is installed
/// (<see cref="PreloadTcmalloc"/>; Debian's <c>libtcmalloc-minimal4</c>): measured in one session
/// (docs/torchsharp.md, "Memory") it used 0.95–1.0 GiB where glibc with these settings used
/// 1.4–2.2 GiB, at 35% more samples/s, and matched glibc's speed on clip-tiny.
/// </para>
/// </remarks>
public static class NativeAllocator
{
    /// <summary>glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2); larger values are refused.</summary>
    public const long MmapThresholdBytes = 32L << 20;

    /// <summary>Free memory at the top of a heap that glibc keeps rather than returning it to the kernel.</summary>
    public const long TrimThresholdBytes = 1L << 30;

    /// <summary>
    /// The slack glibc adds when it grows or makes a heap, and (what matters here) keeps when a
    /// non-main arena's heap empties: glibc deletes such a heap outright unless the pad asks it to
    /// stay, whatever the trim threshold, and the training thread's arena did so about 20 times a
    /// second, each new heap paid for in fresh pages (docs/torchsharp.md, "Memory").
    /// </summary>
    public const long TopPadBytes = 64L << 20;

    /// <summary>Which malloc a worker uses: <c>tcmalloc</c> (the default: preloaded where installed) or <c>glibc</c>.</summary>
    public const string ChoiceVariable = "DISTCLIP_MALLOC";

    /// <summary>gperftools' tcmalloc without its profilers (Debian: libtcmalloc-minimal4).</summary>
    public const string TcmallocLibrary = "libtcmalloc_minimal.so.4";

    private const int MTrimThreshold = -1;
    private const int MTopPad = -2;
    private const int MMmapThreshold = -3;

    private static readonly object Gate = new();
    private static string? _outcome;

    /// <summary>
    /// Applies the settings once per process (later calls return the first outcome) and says what was
    /// done, for the log. Call it before the first tensor is made; settings apply to later allocations.
    /// </summary>
    public static string Configure()
    {
        lock (Gate)
        {
            return _outcome ??= LoadedTcmalloc() is { } tcmalloc
                ? $"malloc: tcmalloc ({tcmalloc}, preloaded); glibc's malloc is not used"
                : (_preloadFailure is null ? "" : _preloadFailure + "; ") + Apply(Environment.GetEnvironmentVariable, Mallopt);
        }
    }

    private static string? _preloadFailure;

    /// <summary>
    /// Where this process's malloc is tcmalloc (LD_PRELOAD, by <see cref="PreloadTcmalloc"/> or the
    /// user), the library's path, read from the process's own mappings; otherwise null.
    /// </summary>
    public static string? LoadedTcmalloc()
    {
        try
        {
            return OperatingSystem.IsLinux()
                ? File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    .Where(f => f.Length >= 6 && Path.GetFileName(f[5]).StartsWith("libtcmalloc", StringComparison.Ordinal))
                    .Select(f => f[5]).FirstOrDefault()
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// Makes tcmalloc this process's malloc by executing the process again, same pid, arguments and
    /// environment, with <c>LD_PRELOAD</c> naming the library (a malloc cannot be swapped once the
    /// first block is allocated). Call it first thing in <c>Main</c>, before anything is read from
    /// stdin or written anywhere. It returns, doing nothing, where <see cref="TcmallocToPreload"/>
    /// says no; where the exec fails it returns, and <see cref="Configure"/> reports that with its
    /// glibc settings. Throws <see cref="ArgumentException"/> for a <c>DISTCLIP_MALLOC</c> other than
    /// <c>tcmalloc</c> or <c>glibc</c> (the caller refuses to start).
    /// </summary>
    public static void PreloadTcmalloc()
    {
        if (!OperatingSystem.IsLinux()
            || TcmallocToPreload(Environment.GetEnvironmentVariable, File.Exists, MultiarchTriplet()) is not { } library)
        {
            return;
        }

        string[] argv;
        try
        {
            argv = File.ReadAllText("/proc/self/cmdline").TrimEnd('\0').Split('\0');
        }
        catch (IOException e)
        {
            _preloadFailure = $"malloc: could not preload {library} ({e.Message})";
            return;
        }

        var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Where(e => (string)e.Key != "LD_PRELOAD")
            .Select(e => $"{e.Key}={e.Value}")
            .Append($"LD_PRELOAD={library}");
        RemoveRuntimeEndpoints(Environment.ProcessId, Path.GetTempPath());
        execve(Environment.ProcessPath ?? "/proc/self/exe", [.. argv, null], [.. environment, null]);
        // Only a failed exec returns.
        _preloadFailure = $"malloc: could not re-execute with {library} preloaded (errno {Marshal.GetLastPInvokeError()})";
    }

    /// <summary>
    /// Removes the diagnostics socket and debugger pipes the .NET runtime made for this process in
    /// <paramref name="tempDirectory"/> (<c>dotnet-diagnostic-PID-KEY-socket</c>,
    /// <c>clr-debug-pipe-PID-KEY-in</c> and <c>-out</c>) before the exec: the new image makes its
    /// own under the same names and removes them when it exits, but an exec runs no shutdown, and
    /// the first image's were left behind, one socket per worker start. Another process's are not touched.
    /// </summary>
    internal static void RemoveRuntimeEndpoints(int pid, string tempDirectory)
    {
        try
        {
            foreach (string pattern in new[] { $"dotnet-diagnostic-{pid}-*-socket", $"clr-debug-pipe-{pid}-*-in", $"clr-debug-pipe-{pid}-*-out" })
            {
                foreach (string path in Directory.EnumerateFileSystemEntries(tempDirectory, pattern))
                {
                    File.Delete(path);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left behind, as before: the exec matters more than the tidying.
        }
    }

    /// <summary>
    /// The tcmalloc to preload, or null: none where <c>DISTCLIP_MALLOC=glibc</c>, where
    /// <c>LD_PRELOAD</c> is already set (the user's own choice, or tcmalloc after the re-exec), where
    /// the user sets glibc's malloc (<c>MALLOC_*</c>, a <c>glibc.malloc</c> tunable) or where the
    /// library is not installed.
    /// </summary>
    internal static string? TcmallocToPreload(Func<string, string?> environment, Func<string, bool> exists, string? triplet)
    {
        string? choice = environment(ChoiceVariable);
        if (choice is not (null or "" or "tcmalloc" or "glibc"))
        {
            throw new ArgumentException($"{ChoiceVariable}: '{choice}' is neither tcmalloc nor glibc");
        }

        if (choice == "glibc" || !string.IsNullOrEmpty(environment("LD_PRELOAD")) || UsersOwnSettings(environment) is not null)
        {
            return null;
        }

        string[] directories = [.. triplet is null ? [] : new[] { $"/usr/lib/{triplet}", $"/lib/{triplet}" }, "/usr/lib64", "/usr/lib", "/usr/local/lib"];
        return directories.Select(d => Path.Combine(d, TcmallocLibrary)).FirstOrDefault(exists);
    }

    /// <summary>Debian's multiarch directory name for this process's architecture (x86_64-linux-gnu, aarch64-linux-gnu).</summary>
    private static string? MultiarchTriplet() => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => "x86_64-linux-gnu",
        Architecture.Arm64 => "aarch64-linux-gnu",
        _ => null,
    };

    /// <summary>What the user set for glibc's malloc, for the log, or null where nothing.</summary>
    private static string? UsersOwnSettings(Func<string, string?> environment)
    {
        string[] own = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX"];
        if (own.FirstOrDefault(v => environment(v) is not null) is { } set)
        {
            return $"malloc: {set} is set, glibc's settings left to the environment";
        }

        return environment("GLIBC_TUNABLES") is { } tunables && tunables.Contains("glibc.malloc.", StringComparison.Ordinal)
            ? "malloc: GLIBC_TUNABLES sets glibc.malloc, glibc's settings left to the environment"
            : null;
    }

    /// <summary>The decision, with the environment and mallopt passed in (tests).</summary>
    internal static string Apply(Func<string, string?> environment, Func<int, int, bool>? mallopt)
    {
        if (mallopt is null)
        {
            return "malloc: not glibc, left as it is";
        }

        if (UsersOwnSettings(environment) is { } own)
        {
            return own;
        }

        bool mmap = mallopt(MMmapThreshold, (int)MmapThresholdBytes);
        bool trim = mallopt(MTrimThreshold, (int)TrimThresholdBytes);
        bool pad = mallopt(MTopPad, (int)TopPadBytes);
        return mmap && trim && pad
            ? $"malloc: mmap threshold {MmapThresholdBytes >> 20} MiB, trim threshold {TrimThresholdBytes >> 20} MiB, top pad {TopPadBytes >> 20} MiB (freed tensors reused, not remapped)"
            : $"malloc: glibc refused mallopt (mmap threshold {Said(mmap)}, trim threshold {Said(trim)}, top pad {Said(pad)})";
    }

    private static string Said(bool accepted) => accepted ? "set" : "refused";

    private static Func<int, int, bool>? Mallopt
    {
        get
        {
            if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("libc.so.6", out var libc))
            {
                return null;
            }

            if (!NativeLibrary.TryGetExport(libc, "mallopt", out _) || !NativeLibrary.TryGetExport(libc, "gnu_get_libc_version", out _))
            {
                return null;
            }

            return (parameter, value) => mallopt(parameter, value) == 1;
        }
    }

    [DllImport("libc.so.6", EntryPoint = "execve", SetLastError = true)]
    private static extern int execve(string path, string?[] argv, string?[] envp);

    [DllImport("libc.so.6", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);
}

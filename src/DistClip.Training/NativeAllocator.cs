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
            return _outcome ??= Apply(Environment.GetEnvironmentVariable, Mallopt);
        }
    }

    /// <summary>The decision, with the environment and mallopt passed in (tests).</summary>
    internal static string Apply(Func<string, string?> environment, Func<int, int, bool>? mallopt)
    {
        if (mallopt is null)
        {
            return "malloc: not glibc, left as it is";
        }

        string[] own = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX"];
        if (own.FirstOrDefault(v => environment(v) is not null) is { } set)
        {
            return $"malloc: {set} is set, glibc's settings left to the environment";
        }

        if (environment("GLIBC_TUNABLES") is { } tunables && tunables.Contains("glibc.malloc.", StringComparison.Ordinal))
        {
            return "malloc: GLIBC_TUNABLES sets glibc.malloc, glibc's settings left to the environment";
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

    [DllImport("libc.so.6", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);
}

using System.Globalization;
using System.Runtime.InteropServices;

namespace DistClip.Training.Tests;

/// <summary>
/// <see cref="NativeAllocator"/>: what it decides from the environment, and that in this process
/// (glibc, as on the workers) a freed block of tensor size is handed out again without the kernel
/// mapping fresh pages for it.
/// </summary>
public class NativeAllocatorTests
{
    [Fact]
    public void Before_its_exec_a_process_removes_its_own_runtime_endpoints_and_no_one_elses()
    {
        string temp = Directory.CreateTempSubdirectory("distclip-endpoints-").FullName;
        try
        {
            string[] mine = ["dotnet-diagnostic-4242-1761816-socket", "clr-debug-pipe-4242-1761816-in", "clr-debug-pipe-4242-1761816-out"];
            string[] others =
            [
                "dotnet-diagnostic-42420-99-socket", "dotnet-diagnostic-424-99-socket", "clr-debug-pipe-14242-7-in", "dotnet-diagnostic-4242-1-socket.keep",
                "notes-4242-1-socket",
            ];
            foreach (string name in mine.Concat(others))
            {
                File.WriteAllText(Path.Combine(temp, name), "");
            }

            NativeAllocator.RemoveRuntimeEndpoints(4242, temp);

            Assert.Equal(others.Order(StringComparer.Ordinal), Directory.EnumerateFileSystemEntries(temp).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    [Fact]
    public void Without_settings_of_the_users_own_it_fixes_both_thresholds()
    {
        var calls = new List<(int, int)>();
        string outcome = NativeAllocator.Apply(_ => null, (p, v) => { calls.Add((p, v)); return true; });

        Assert.Equal([(-3, 32 << 20), (-1, 1 << 30), (-2, 64 << 20)], calls); // M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD
        Assert.Contains("mmap threshold 32 MiB", outcome);
    }

    [Theory]
    [InlineData("MALLOC_MMAP_THRESHOLD_", "65536")]
    [InlineData("MALLOC_TRIM_THRESHOLD_", "0")]
    [InlineData("MALLOC_ARENA_MAX", "2")]
    [InlineData("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072")]
    public void A_users_own_malloc_settings_are_left_alone(string variable, string value)
    {
        bool called = false;
        string outcome = NativeAllocator.Apply(v => v == variable ? value : null, (_, _) => called = true);

        Assert.False(called);
        Assert.Contains("left to the environment", outcome);
    }

    [Fact]
    public void Tunables_for_other_parts_of_glibc_do_not_count_as_malloc_settings()
    {
        int calls = 0;
        NativeAllocator.Apply(v => v == "GLIBC_TUNABLES" ? "glibc.pthread.rseq=0" : null, (_, _) => ++calls > 0);
        Assert.Equal(3, calls);
    }

    [Fact]
    public void Without_glibc_nothing_is_done_and_a_refusal_is_reported()
    {
        Assert.Contains("not glibc", NativeAllocator.Apply(_ => null, null));
        Assert.Contains("refused", NativeAllocator.Apply(_ => null, (p, _) => p != -1));
        Assert.Contains("top pad refused", NativeAllocator.Apply(_ => null, (p, _) => p != -2));
    }

    private const string Debian = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";

    [Fact]
    public void Tcmalloc_is_preloaded_from_the_multiarch_directory_first_or_the_plain_ones()
    {
        Assert.Equal(Debian, NativeAllocator.TcmallocToPreload(_ => null, _ => true, "x86_64-linux-gnu"));
        Assert.Equal("/usr/lib64/libtcmalloc_minimal.so.4", NativeAllocator.TcmallocToPreload(_ => null, f => f.StartsWith("/usr/lib64/", StringComparison.Ordinal), "x86_64-linux-gnu"));
        Assert.Equal("/usr/local/lib/libtcmalloc_minimal.so.4", NativeAllocator.TcmallocToPreload(_ => null, f => f.StartsWith("/usr/local/", StringComparison.Ordinal), null));
        Assert.Null(NativeAllocator.TcmallocToPreload(_ => null, _ => false, "x86_64-linux-gnu")); // not installed: glibc, with its settings
        Assert.Equal(Debian, NativeAllocator.TcmallocToPreload(v => v == NativeAllocator.ChoiceVariable ? "tcmalloc" : null, _ => true, "x86_64-linux-gnu"));
    }

    [Theory]
    [InlineData(NativeAllocator.ChoiceVariable, "glibc")] // the user's choice
    [InlineData("LD_PRELOAD", "/opt/jemalloc/libjemalloc.so.2")] // the user's own preload, or tcmalloc after the re-exec
    [InlineData("MALLOC_ARENA_MAX", "2")] // glibc's malloc, set up by the user
    [InlineData("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")]
    public void Nothing_is_preloaded_where_the_environment_chose_already(string variable, string value)
    {
        Assert.Null(NativeAllocator.TcmallocToPreload(v => v == variable ? value : null, _ => true, "x86_64-linux-gnu"));
    }

    [Fact]
    public void An_unknown_choice_is_refused_with_the_variable_named()
    {
        var e = Assert.Throws<ArgumentException>(() => NativeAllocator.TcmallocToPreload(v => v == NativeAllocator.ChoiceVariable ? "jemalloc" : null, _ => true, null));
        Assert.Equal("DISTCLIP_MALLOC: 'jemalloc' is neither tcmalloc nor glibc", e.Message);
    }

    [Fact]
    public void A_test_process_without_a_preload_is_not_on_tcmalloc()
    {
        // The worker's side (tcmalloc found in its own mappings) is LaunchTests'; here the negative.
        Assert.True(string.IsNullOrEmpty(Environment.GetEnvironmentVariable("LD_PRELOAD")) == (NativeAllocator.LoadedTcmalloc() is null));
    }

    [Fact]
    public void After_configuring_a_freed_16_MiB_block_comes_back_without_fresh_pages()
    {
        Assert.Contains("mmap threshold", NativeAllocator.Configure());
        const int size = 16 << 20;
        const int pages = size / 4096;

        Touch(size); // the first time the heap grows: its pages are new
        long before = MinorFaults();
        Touch(size);
        long faults = MinorFaults() - before;

        // Unconfigured, glibc maps a 16 MiB request afresh (or trims it back) each time: about 4,096 faults.
        Assert.True(faults < pages / 8, $"{faults} page faults touching a re-allocated 16 MiB block of {pages} pages");
    }

    /// <summary>malloc (Marshal.AllocHGlobal on Unix), a write to every page, free.</summary>
    private static void Touch(int size)
    {
        IntPtr p = Marshal.AllocHGlobal(size);
        try
        {
            for (int i = 0; i < size; i += 4096)
            {
                Marshal.WriteByte(p, i, 1);
            }
        }
        finally
        {
            Marshal.FreeHGlobal(p);
        }
    }

    /// <summary>This process's minor page faults so far (/proc/self/stat, field 10).</summary>
    private static long MinorFaults()
    {
        string stat = File.ReadAllText("/proc/self/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], CultureInfo.InvariantCulture); // minflt is the 10th field, the 8th after the name
    }
}

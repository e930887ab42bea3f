using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace DistClip.Cli.Tests;

/// <summary>
/// Probe 6 of issue #15 as it was made: a 64 MiB safetensors file whose 128 entries all point at the
/// same bytes (8 GiB if each were loaded), given to a real <c>distclip classify --pretrained</c>
/// process, which once went past 6 GiB before any name or shape check. It must be refused naming an
/// entry, promptly, with its peak RSS far below what loading would take.
/// </summary>
public sealed class HostileWeightsTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-hostile-weights-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Classify_with_128_entries_on_the_same_64_MiB_is_refused_by_name_with_RSS_bounded()
    {
        const int floats = 64 << 18; // 64 MiB of float32
        string header = "{" + string.Join(",", Enumerable.Range(0, 128).Select(i =>
            $$"""
            "visual.w{{i}}":{"dtype":"F32","shape":[{{floats}}],"data_offsets":[0,{{floats * 4L}}]}
            """)) + "}";
        string weights = Path.Combine(_dir, "hostile.safetensors");
        using (var file = File.Create(weights))
        {
            byte[] json = Encoding.UTF8.GetBytes(header);
            file.Write(BitConverter.GetBytes((ulong)json.Length));
            file.Write(json);
            file.SetLength(file.Position + (floats * 4L)); // zeros
        }

        string image = Path.Combine(_dir, "image.png");
        File.WriteAllBytes(image, Convert.FromBase64String(TinyPng));

        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "distclip.dll"), "classify", "--pretrained", weights, "--labels", "a,b", image })
        {
            psi.ArgumentList.Add(a);
        }

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using (var deadline = new CancellationTokenSource(Deadline))
        {
            await process.WaitForExitAsync(deadline.Token); // an OperationCanceledException: it did not end within the deadline
        }

        string error = await stderr;
        Assert.True(process.ExitCode == 1, $"exit {process.ExitCode}\n{await stdout}\n{error}");
        Assert.Contains("a safetensors file that is not safe to load", error);
        Assert.Matches(@"tensor visual\.w\d+ overlaps visual\.w\d+", error);
        Assert.True(clock.Elapsed < Deadline, $"refusing took {clock.Elapsed}");

        // The peak RSS of this test host's reaped children (getrusage RUSAGE_CHILDREN): the classify
        // process is the only child this class starts, and an upper bound for its own peak either way.
        long peakKiB = ChildrenPeakRssKiB();
        Assert.True(peakKiB > 20 << 10, $"the children's peak RSS reads {peakKiB} KiB: the measurement did not see the classify process");
        Assert.True(peakKiB < 1L << 20, $"a child of the test host peaked at {peakKiB >> 10} MiB (loading all 128 entries: 8 GiB)");
    }

    /// <summary>A 2x2 RGB PNG.</summary>
    private const string TinyPng = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAADklEQVR4nGNgBwMGCAUAAloAVXnuiz0AAAAASUVORK5CYII=";

    private static long ChildrenPeakRssKiB()
    {
        var usage = new long[18]; // struct rusage on 64-bit Linux: two timevals, then 14 longs, ru_maxrss first (KiB)
        Assert.Equal(0, GetRUsage(-1 /* RUSAGE_CHILDREN */, usage));
        return usage[4];
    }

    [DllImport("libc.so.6", EntryPoint = "getrusage", SetLastError = true)]
    private static extern int GetRUsage(int who, [Out] long[] usage);
}

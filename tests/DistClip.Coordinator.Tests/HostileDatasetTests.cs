using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DistClip.Data.Tests;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Probes 1 to 5 of issue #15 against real workers: <c>coordinator launch</c> trains two workers on a
/// CSV dataset whose rows include a 4.5 KB GIF of 300 frames of 4000x4000, a PNG whose zTXt chunk
/// inflates to 1 GiB, the root directory, a FIFO, a device and a 64 MiB caption. The run must end
/// (no worker blocks), succeed (no worker crashes), count the rows it cannot read as skipped, and
/// each worker's peak RSS must stay far below what decoding the bombs would take.
/// </summary>
public sealed class HostileDatasetTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-hostile-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_run_over_bombs_a_directory_a_fifo_a_device_and_a_64_MiB_caption_ends_skipping_and_counting_them()
    {
        string data = Directory.CreateDirectory(Path.Combine(_dir, "data")).FullName;
        var csv = new StringBuilder("filepath,title\n");
        for (int i = 0; i < 60; i++)
        {
            File.WriteAllBytes(Path.Combine(data, $"ok{i}.png"), TestImages.SolidPng(8, 8, new Rgb24((byte)(4 * i), (byte)(4 * i), (byte)(4 * i))));
            csv.Append(CultureInfo.InvariantCulture, $"ok{i}.png,a photo of colour {i}\n");
        }

        File.WriteAllBytes(Path.Combine(data, "bomb.gif"), TestImages.GifBomb(4000, 4000, 300));
        File.WriteAllBytes(Path.Combine(data, "ztxt.png"), TestImages.PngWithTextBomb(1L << 30));
        using (var mkfifo = Process.Start("mkfifo", [Path.Combine(data, "pipe.png")]))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        // 20 rows of each bomb among 104: each rank's 96 samples draw them dozens of times, whatever the seed.
        for (int i = 0; i < 20; i++)
        {
            csv.Append("bomb.gif,a gif of 300 frames\nztxt.png,a text bomb\n");
        }

        csv.Append("/,the root\npipe.png,a fifo\n/dev/zero,a device\nok0.png,\"");
        string file = Path.Combine(data, "data.csv");
        using (var writer = new StreamWriter(file))
        {
            writer.Write(csv.ToString());
            var chunk = new string('x', 1 << 20);
            for (int i = 0; i < 64; i++)
            {
                writer.Write(chunk);
            }

            writer.Write("\"\n");
        }

        Assert.True(new FileInfo(Path.Combine(data, "bomb.gif")).Length <= 4600);
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3),
            "launch", "--model", "clip-micro", "--global-batch", "32", "--seed", "11", "--warmup-steps", "2",
            "--eval-samples", "32", "--retrieval-samples", "16", "--log-every", "1", "--workers", "2", "--steps", "6",
            "--dataset", "csv:" + file, "--run-id", "hostile", "--run-dir", Path.Combine(_dir, "hostile"),
            "--checkpoint-dir", Path.Combine(_dir, "checkpoints"), "--heartbeat-timeout", "10", "--collective-timeout", "20");

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\nstdout:\n{result.Stdout}\nstderr:\n{result.Stderr}");
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "hostile", "summary.json")));
        var root = summary.RootElement;
        Assert.Equal(0, root.GetProperty("restarts").GetInt32());
        // Rank 0's counts: the rows that are not regular files, under that reason and no other; the bombs decode (their first frame, no text).
        var reasons = root.GetProperty("skipped_by_reason").EnumerateObject().Where(p => p.Value.GetInt64() > 0).ToDictionary(p => p.Name, p => p.Value.GetInt64());
        Assert.True(reasons.GetValueOrDefault("NotARegularFile") > 0, $"skipped: {root.GetProperty("skipped_by_reason")}");
        Assert.Equal(["NotARegularFile"], reasons.Keys);
        long[] peaks = root.GetProperty("peak_rss_bytes").EnumerateArray().Select(p => p.GetInt64()).ToArray();
        output.WriteLine($"skipped by rank 0: {root.GetProperty("skipped_by_reason")}; peak RSS: {string.Join(", ", peaks.Select(x => x >> 20))} MiB");
        Assert.Equal(2, peaks.Length);
        Assert.All(peaks, p => Assert.True(p > 50_000_000 && p < PeakBound, $"a worker peaked at {p >> 20} MiB (peaks: {string.Join(", ", peaks.Select(x => x >> 20))} MiB)"));
    }

    /// <summary>All 300 frames would be 14 GB, the zTXt text 1 GiB.</summary>
    private const long PeakBound = 1L << 30;
}

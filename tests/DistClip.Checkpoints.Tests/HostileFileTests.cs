using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace DistClip.Checkpoints.Tests;

/// <summary>
/// Checkpoint directories are shared storage others can write to (#15 part 5): only regular files
/// are opened, what is loaded is what was verified, and verifying a large checkpoint can be cancelled.
/// </summary>
public sealed class HostileFileTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private readonly TempRoot _root = new();

    public void Dispose() => _root.Dispose();

    public enum Kind { SymbolicLink, Fifo }

    [Theory]
    [InlineData(CheckpointFiles.Model, Kind.SymbolicLink)]
    [InlineData(CheckpointFiles.Model, Kind.Fifo)]
    [InlineData(CheckpointFiles.State, Kind.Fifo)]
    [InlineData(CheckpointFiles.Manifest, Kind.SymbolicLink)]
    [InlineData(CheckpointFiles.Manifest, Kind.Fifo)]
    public async Task A_link_or_FIFO_in_a_checkpoint_is_refused_by_name_and_never_opened(string file, Kind kind)
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        store.Commit(200);
        string bad = store.StepDirectory(200);
        Replace(Path.Combine(bad, file), kind);

        // Run off the test thread: opening a FIFO would block, and that must fail the test, not hang it.
        var error = await Assert.ThrowsAsync<CorruptCheckpointException>(
            () => Task.Run(() => CheckpointStore.ResolveDirectory(bad, CancellationToken.None)).WaitAsync(Deadline));
        Assert.Equal(file, error.FileName);
        Assert.Contains(kind == Kind.Fifo ? "is a FIFO, not a regular file" : "is a symbolic link, not a regular file", error.Reason);

        // Resolving the run steps back past it, naming it.
        var resolved = await Task.Run(() => store.ResolveLatest(CancellationToken.None)).WaitAsync(Deadline);
        Assert.Equal(100, resolved!.Step);
        Assert.Contains(resolved.Warnings, w => w.Contains(bad, StringComparison.Ordinal) && w.Contains(file, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_step_directory_that_is_a_link_and_a_latest_that_is_a_FIFO_are_refused()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        string real = store.StepDirectory(100);
        string link = Path.Combine(_root.Path, "elsewhere");
        Directory.CreateSymbolicLink(link, real);

        var error = Assert.Throws<CorruptCheckpointException>(() => CheckpointStore.ResolveDirectory(link, CancellationToken.None));
        Assert.Null(error.FileName);
        Assert.Contains("is a symbolic link, not a directory", error.Reason);

        string latest = Path.Combine(store.RunDirectory, "latest");
        File.Delete(latest);
        MakeFifo(latest);
        var resolved = await Task.Run(() => store.ResolveLatest(CancellationToken.None)).WaitAsync(Deadline);
        Assert.Equal(100, resolved!.Step);
        Assert.Contains(resolved.Warnings, w => w.Contains("is a FIFO", StringComparison.Ordinal));
    }

    /// <summary>
    /// A MANIFEST that names a file outside its step directory, with that file's true sha256 and size:
    /// a loader that joined the name to the directory would verify and read it. Refused as a malformed
    /// line, naming it; resolving the run steps back to the checkpoint before.
    /// </summary>
    [Theory]
    [InlineData("../../outside.bin")]
    [InlineData("ABSOLUTE")]
    [InlineData("..")]
    [InlineData("sub/../model.safetensors")]
    public async Task A_manifest_entry_that_climbs_out_of_its_directory_is_refused_by_name(string name)
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        store.Commit(200);
        string bad = store.StepDirectory(200);
        byte[] outside = Encoding.UTF8.GetBytes("bytes outside the checkpoint");
        string outsidePath = Path.Combine(_root.Path, "outside.bin");
        File.WriteAllBytes(outsidePath, outside);
        name = name == "ABSOLUTE" ? outsidePath : name;
        string manifest = Path.Combine(bad, CheckpointFiles.Manifest);
        string line = $"{Manifest.Sha256Of(outside)}  {outside.Length}  {name}";
        File.WriteAllText(manifest, line + "\n" + File.ReadAllText(manifest), new UTF8Encoding(false));

        var error = await Assert.ThrowsAsync<CorruptCheckpointException>(
            () => Task.Run(() => CheckpointStore.ResolveDirectory(bad, CancellationToken.None)).WaitAsync(Deadline));
        Assert.Equal(CheckpointFiles.Manifest, error.FileName);
        Assert.Contains($"line 1 is malformed: '{line}'", error.Reason);

        var resolved = await Task.Run(() => store.ResolveLatest(CancellationToken.None)).WaitAsync(Deadline);
        Assert.Equal(100, resolved!.Step);
        Assert.Contains(resolved.Warnings, w => w.Contains(bad, StringComparison.Ordinal) && w.Contains(CheckpointFiles.Manifest, StringComparison.Ordinal));
    }

    public enum Change { InPlace, SwappedByRename, Truncated }

    [Theory]
    [InlineData(Change.InPlace)]
    [InlineData(Change.SwappedByRename)]
    [InlineData(Change.Truncated)]
    public void A_file_changed_after_verification_is_refused_as_it_is_loaded(Change change)
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        ResolvedCheckpoint resolved = store.ResolveLatest(CancellationToken.None)!;
        string model = Path.Combine(resolved.Directory, CheckpointFiles.Model);
        byte[] other = Fixtures.Bytes(999, CheckpointFiles.Model); // same length, other bytes
        switch (change)
        {
            case Change.InPlace:
                using (var file = new FileStream(model, FileMode.Open, FileAccess.Write))
                {
                    file.Write(other);
                }
                break;
            case Change.SwappedByRename:
                File.WriteAllBytes(model + ".new", other);
                File.Move(model + ".new", model, overwrite: true);
                break;
            case Change.Truncated:
                using (var file = new FileStream(model, FileMode.Open, FileAccess.Write))
                {
                    file.SetLength(100);
                }
                break;
        }

        var error = Assert.Throws<CorruptCheckpointException>(() => resolved.Read(CheckpointFiles.Model));
        Assert.Equal(CheckpointFiles.Model, error.FileName);
        Assert.Contains("changed since it was verified", error.Reason);
        // The untouched file still loads, whole.
        Assert.Equal(Fixtures.Bytes(100, CheckpointFiles.Optimizer, 8192), resolved.Read(CheckpointFiles.Optimizer));
    }

    [Fact]
    public void A_loader_that_reads_exactly_the_files_length_is_stopped_before_its_last_byte()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        ResolvedCheckpoint resolved = store.ResolveLatest(CancellationToken.None)!;
        using (var file = new FileStream(Path.Combine(resolved.Directory, CheckpointFiles.Model), FileMode.Open, FileAccess.ReadWrite))
        {
            file.Seek(-1, SeekOrigin.End);
            int last = file.ReadByte();
            file.Seek(-1, SeekOrigin.End);
            file.WriteByte((byte)(last ^ 0x01)); // only the last byte differs
        }

        // Like a self-delimiting format's loader: it never asks past the end, so no end-of-file read checks it.
        using Stream model = resolved.Open(CheckpointFiles.Model);
        var buffer = new byte[model.Length];
        var error = Assert.Throws<CorruptCheckpointException>(() => model.ReadExactly(buffer));
        Assert.Contains("changed since it was verified", error.Reason);
    }

    [Fact]
    public async Task Verifying_a_large_checkpoint_stops_promptly_when_cancelled()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        string directory = store.StepDirectory(100);
        string model = Path.Combine(directory, CheckpointFiles.Model);
        const long size = 4L << 30; // sparse: no disk, but seconds to hash
        using (var file = new FileStream(model, FileMode.Create, FileAccess.Write))
        {
            file.SetLength(size);
        }
        RewriteManifestEntry(directory, CheckpointFiles.Model, size);

        using var cts = new CancellationTokenSource();
        long before = BytesReadByThisProcess();
        var verifying = Task.Run(() => CheckpointStore.ResolveDirectory(directory, cts.Token));
        // The event: the verifier is part-way through the model (64 MiB read; every other file is a few KiB).
        await ReadBeyond(before + (64L << 20), verifying);
        var clock = Stopwatch.StartNew();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => verifying.WaitAsync(Deadline));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"verification stopped {clock.Elapsed} after it was cancelled");
        long read = BytesReadByThisProcess() - before;
        Assert.True(read < size, $"{read} bytes were read: the whole {size}-byte file before it stopped");
    }

    /// <summary>
    /// Bytes this process has read (rchar in /proc/self/io). FileStream reads with pread, so the
    /// descriptor's offset does not move; this count does.
    /// </summary>
    private static long BytesReadByThisProcess()
    {
        string line = File.ReadLines("/proc/self/io").First(l => l.StartsWith("rchar:", StringComparison.Ordinal));
        return long.Parse(line["rchar:".Length..].Trim(), CultureInfo.InvariantCulture);
    }

    private static async Task ReadBeyond(long total, Task reader)
    {
        var clock = Stopwatch.StartNew();
        while (BytesReadByThisProcess() < total)
        {
            Assert.False(reader.IsCompleted, $"verification ended before it could be cancelled: {reader.Exception?.InnerException?.Message}");
            Assert.True(clock.Elapsed < Deadline, $"the model was not being read within {Deadline}");
            await Task.Yield();
        }
    }

    private static void RewriteManifestEntry(string directory, string name, long size)
    {
        string manifest = Path.Combine(directory, CheckpointFiles.Manifest);
        var lines = File.ReadAllText(manifest).TrimEnd('\n').Split('\n')
            .Select(l => l.EndsWith("  " + name, StringComparison.Ordinal) ? $"{new string('0', 64)}  {size}  {name}" : l);
        File.WriteAllText(manifest, string.Join('\n', lines) + "\n", new UTF8Encoding(false));
    }

    private static void Replace(string path, Kind kind)
    {
        byte[] bytes = File.ReadAllBytes(path);
        File.Delete(path);
        if (kind == Kind.SymbolicLink)
        {
            // The same bytes through a link: refused for what it is, not for what it holds.
            string target = path + ".target";
            File.WriteAllBytes(target, bytes);
            File.CreateSymbolicLink(path, target);
        }
        else
        {
            MakeFifo(path);
        }
    }

    private static void MakeFifo(string path)
    {
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }
}

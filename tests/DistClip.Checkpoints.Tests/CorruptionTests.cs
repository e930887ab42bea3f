using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;

namespace DistClip.Checkpoints.Tests;

public sealed class CorruptionTests : IDisposable
{
    private readonly TempRoot _root = new();

    public void Dispose() => _root.Dispose();

    public enum Damage { FlipByte, Truncate, Delete }

    [Theory]
    [InlineData(CheckpointFiles.Model, Damage.FlipByte)]
    [InlineData(CheckpointFiles.Model, Damage.Truncate)]
    [InlineData(CheckpointFiles.Model, Damage.Delete)]
    [InlineData(CheckpointFiles.Optimizer, Damage.FlipByte)]
    [InlineData(CheckpointFiles.State, Damage.FlipByte)]
    [InlineData(CheckpointFiles.Manifest, Damage.Delete)]
    public void DamagedNewestCheckpointFallsBackToThePreviousWithAWarningNamingFileAndDirectory(string file, Damage damage)
    {
        var logger = new RecordingLogger();
        CheckpointStore store = _root.Store(logger: logger);
        store.Commit(100);
        store.Commit(200);
        string bad = store.StepDirectory(200);
        Apply(damage, Path.Combine(bad, file));

        ResolvedCheckpoint resolved = store.ResolveLatest(CancellationToken.None)!;

        Assert.Equal(100, resolved.Step);
        Assert.Equal(Fixtures.Bytes(100, CheckpointFiles.Model), resolved.Read(CheckpointFiles.Model));
        string warning = Assert.Single(resolved.Warnings);
        Assert.Contains(bad, warning);
        Assert.Contains(file, warning);
        Assert.Contains(logger.At(LogLevel.Warning), m => m.Contains(bad) && m.Contains(file));
    }

    [Theory]
    [InlineData(Damage.FlipByte, "sha256")]
    [InlineData(Damage.Truncate, "truncated")]
    [InlineData(Damage.Delete, "missing")]
    public void ResolvingADamagedDirectoryExplicitlyThrowsNamingTheFile(Damage damage, string reason)
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        string bad = store.StepDirectory(100);
        Apply(damage, Path.Combine(bad, CheckpointFiles.Model));

        var error = Assert.Throws<CorruptCheckpointException>(() => CheckpointStore.ResolveDirectory(bad, CancellationToken.None));

        Assert.Equal(CheckpointFiles.Model, error.FileName);
        Assert.Equal(bad, error.Directory);
        Assert.Contains(reason, error.Reason);
        Assert.Contains($"{bad} is corrupt: {CheckpointFiles.Model}", error.Message);
    }

    [Fact]
    public void WhenEveryCheckpointIsDamagedResolveLatestThrowsListingEach()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        store.Commit(200);
        Apply(Damage.FlipByte, Path.Combine(store.StepDirectory(100), CheckpointFiles.Optimizer));
        Apply(Damage.Truncate, Path.Combine(store.StepDirectory(200), CheckpointFiles.Model));

        var error = Assert.Throws<CheckpointNotFoundException>(() => store.ResolveLatest(CancellationToken.None));

        Assert.Equal(2, error.Problems.Count);
        Assert.Contains($"{store.StepDirectory(200)} is corrupt: {CheckpointFiles.Model}", error.Problems[0]);
        Assert.Contains($"{store.StepDirectory(100)} is corrupt: {CheckpointFiles.Optimizer}", error.Problems[1]);
        Assert.Contains("No valid checkpoint", error.Message);
    }

    [Fact]
    public void ARunWithNoCheckpointsResolvesToNull()
    {
        Assert.Null(_root.Store().ResolveLatest(CancellationToken.None));
    }

    [Fact]
    public void ResolvingAMissingDirectoryThrowsNotFound()
    {
        Assert.Throws<CheckpointNotFoundException>(() => CheckpointStore.ResolveDirectory(Path.Combine(_root.Path, "nope"), CancellationToken.None));
    }

    [Fact]
    public void AnUnlistedFileIsReportedButNeitherBlocksResumeNorCanBeOpened()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        File.WriteAllText(Path.Combine(store.StepDirectory(100), "notes.txt"), "someone wrote here");

        ResolvedCheckpoint resolved = store.ResolveLatest(CancellationToken.None)!;

        Assert.Equal(100, resolved.Step);
        Assert.Contains("notes.txt", Assert.Single(resolved.Warnings));
        Assert.Throws<FileNotFoundException>(() => resolved.Open("notes.txt"));
    }

    [Fact]
    public void AStateWhoseConfigNoLongerMatchesItsHashIsRejectedEvenWithAConsistentManifest()
    {
        CheckpointStore store = _root.Store();
        CommittedCheckpoint committed = store.Commit(100);
        string statePath = Path.Combine(committed.Directory, CheckpointFiles.State);
        string edited = File.ReadAllText(statePath).Replace("\"global_batch\": 256", "\"global_batch\": 512", StringComparison.Ordinal);
        Assert.NotEqual(File.ReadAllText(statePath), edited);
        File.WriteAllText(statePath, edited);
        RewriteManifestLine(committed.Directory, CheckpointFiles.State);

        var error = Assert.Throws<CorruptCheckpointException>(() => CheckpointStore.ResolveDirectory(committed.Directory, CancellationToken.None));

        Assert.Equal(CheckpointFiles.State, error.FileName);
        Assert.Contains("config_hash", error.Reason);
    }

    [Fact]
    public void LatestNamingAMissingDirectoryFallsBackWithAWarning()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        store.Commit(200);
        Directory.Delete(store.StepDirectory(200), recursive: true);

        ResolvedCheckpoint resolved = store.ResolveLatest(CancellationToken.None)!;

        Assert.Equal(100, resolved.Step);
        Assert.Contains(store.StepDirectory(200), Assert.Single(resolved.Warnings));
    }

    [Fact]
    public void StepDirectoriesNewerThanLatestAreNeverUsed()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        store.Commit(200);
        // A crash after step 200's directory was renamed into place but before `latest` moved.
        File.WriteAllText(Path.Combine(store.RunDirectory, "latest"), "step-000000100\n");

        Assert.Equal(100, store.ResolveLatest(CancellationToken.None)!.Step);
    }

    private static void Apply(Damage damage, string path)
    {
        switch (damage)
        {
            case Damage.FlipByte:
                byte[] bytes = File.ReadAllBytes(path);
                bytes[bytes.Length / 2] ^= 0x01;
                File.WriteAllBytes(path, bytes);
                break;
            case Damage.Truncate:
                using (var file = new FileStream(path, FileMode.Open))
                {
                    file.SetLength(file.Length / 2);
                }
                break;
            case Damage.Delete:
                File.Delete(path);
                break;
        }
    }

    private static void RewriteManifestLine(string directory, string name)
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(directory, name));
        string manifestPath = Path.Combine(directory, CheckpointFiles.Manifest);
        string[] lines = File.ReadAllText(manifestPath).TrimEnd('\n').Split('\n');
        string rewritten = string.Join("\n", lines.Select(l => l.EndsWith("  " + name, StringComparison.Ordinal)
            ? $"{Convert.ToHexStringLower(SHA256.HashData(bytes))}  {bytes.Length}  {name}"
            : l)) + "\n";
        File.WriteAllText(manifestPath, rewritten, new UTF8Encoding(false));
    }
}

using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;

namespace DistClip.Checkpoints.Tests;

public sealed class CommitTests : IDisposable
{
    private readonly TempRoot _root = new();

    public void Dispose() => _root.Dispose();

    [Fact]
    public void WriterThatThrowsHalfwayLeavesThePreviousCheckpointAsLatestAndNoStepDirectory()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        Dictionary<string, Action<Stream>> files = Fixtures.Files(200);
        files[CheckpointFiles.Model] = s =>
        {
            s.Write(Fixtures.Bytes(200, CheckpointFiles.Model, 2048)); // half of the file, then the "crash"
            throw new IOException("simulated crash while writing model.bin");
        };

        var error = Assert.Throws<IOException>(() => store.Commit(200, Fixtures.State(200), Fixtures.Config, files, CancellationToken.None));

        Assert.Contains("simulated crash", error.Message);
        Assert.Equal([100L], store.CommittedSteps());
        Assert.False(Directory.Exists(store.StepDirectory(200)), "a step directory exists for the failed commit");
        Assert.Equal("step-000000100\n", store.LatestText());
        ResolvedCheckpoint latest = store.ResolveLatest(CancellationToken.None)!;
        Assert.Equal(100, latest.Step);
        Assert.Empty(latest.Warnings);
        Assert.Empty(Directory.GetFileSystemEntries(store.RunDirectory, ".tmp-*"));
    }

    [Fact]
    public void LeftoversOfAHardCrashAreIgnoredOnReadAndRemovedByTheNextCommit()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        // What a killed process leaves: a half-written temp step directory and a temp latest file.
        string tempStep = Path.Combine(store.RunDirectory, ".tmp-step-000000200-0123456789ab");
        Directory.CreateDirectory(tempStep);
        File.WriteAllBytes(Path.Combine(tempStep, CheckpointFiles.Model), new byte[100]);
        File.WriteAllText(Path.Combine(store.RunDirectory, ".tmp-latest-0123456789ab"), "step-000000200\n");

        ResolvedCheckpoint latest = store.ResolveLatest(CancellationToken.None)!;
        Assert.Equal(100, latest.Step);
        Assert.Empty(latest.Warnings);
        Assert.Equal([100L], store.CommittedSteps());

        store.Commit(200);
        Assert.Empty(Directory.GetFileSystemEntries(store.RunDirectory, ".tmp-*"));
        Assert.Equal([100L, 200L], store.CommittedSteps());
    }

    [Fact]
    public void CancellingDuringTheWriteLeavesNoTraceAndLatestUnchanged()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100);
        using var cts = new CancellationTokenSource();
        Dictionary<string, Action<Stream>> files = Fixtures.Files(200);
        Action<Stream> writeModel = files[CheckpointFiles.Model];
        files[CheckpointFiles.Model] = s =>
        {
            writeModel(s);
            cts.Cancel(); // the trainer is asked to stop while the checkpoint is being written
        };

        Assert.ThrowsAny<OperationCanceledException>(() => store.Commit(200, Fixtures.State(200), Fixtures.Config, files, cts.Token));

        Assert.Equal([100L], store.CommittedSteps());
        Assert.Equal("step-000000100\n", store.LatestText());
        Assert.Empty(Directory.GetFileSystemEntries(store.RunDirectory, ".tmp-*"));
    }

    [Fact]
    public void LatestNamesACompleteVerifiedCheckpointAfterEveryCommit()
    {
        CheckpointStore store = _root.Store(keep: 2);
        for (long step = 100; step <= 600; step += 100)
        {
            CommittedCheckpoint committed = store.Commit(step);

            string named = store.LatestText().Trim();
            Assert.Equal(Path.GetFileName(committed.Directory), named);
            ResolvedCheckpoint resolved = CheckpointStore.ResolveDirectory(Path.Combine(store.RunDirectory, named), CancellationToken.None);
            Assert.Equal(step, resolved.Step);
            Assert.True(JsonNode.DeepEquals(Fixtures.State(step), resolved.State), $"state of step {step} came back as {resolved.State.ToJsonString()}");
            Assert.Equal(Fixtures.Bytes(step, CheckpointFiles.Model), resolved.Read(CheckpointFiles.Model));
            Assert.Equal([CheckpointFiles.Model, CheckpointFiles.Optimizer], resolved.Files);
        }
    }

    [Fact]
    public void ManifestListsEveryOtherFileWithItsSha256AndSize()
    {
        CheckpointStore store = _root.Store();
        CommittedCheckpoint committed = store.Commit(100);

        string manifest = File.ReadAllText(Path.Combine(committed.Directory, CheckpointFiles.Manifest));
        string[] expected = [.. new[] { CheckpointFiles.Model, CheckpointFiles.Optimizer, CheckpointFiles.State }.Select(name =>
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(committed.Directory, name));
            return $"{Convert.ToHexStringLower(SHA256.HashData(bytes))}  {bytes.Length}  {name}";
        })];
        Assert.Equal(string.Join("\n", expected) + "\n", manifest);
        long total = Directory.GetFiles(committed.Directory).Sum(f => new FileInfo(f).Length);
        Assert.Equal(total, committed.Bytes);
    }

    [Fact]
    public void StateJsonHoldsStepConfigAndConfigHashBesideTheCallersFields()
    {
        CheckpointStore store = _root.Store();
        CommittedCheckpoint committed = store.Commit(100);

        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(committed.Directory, CheckpointFiles.State)))!.AsObject();
        Assert.Equal(100, (long)state["step"]!);
        Assert.Equal(CheckpointConfig.Hash(Fixtures.Config), (string)state["config_hash"]!);
        Assert.Equal(256, (int)state["config"]!["global_batch"]!);
        Assert.Equal(1, (int)state["epoch"]!);
    }

    [Fact]
    public void CommitDurationComesFromTheInjectedClock()
    {
        var time = new FakeTimeProvider();
        CheckpointStore store = _root.Store(time: time);
        Dictionary<string, Action<Stream>> files = Fixtures.Files(100);
        Action<Stream> writeModel = files[CheckpointFiles.Model];
        files[CheckpointFiles.Model] = s =>
        {
            writeModel(s);
            time.Advance(TimeSpan.FromSeconds(2));
        };

        CommittedCheckpoint committed = store.Commit(100, Fixtures.State(100), Fixtures.Config, files, CancellationToken.None);

        Assert.Equal(TimeSpan.FromSeconds(2), committed.Duration);
    }

    [Theory]
    [InlineData("step")]
    [InlineData("config")]
    [InlineData("config_hash")]
    public void StateMayNotSetTheKeysTheLibraryOwns(string key)
    {
        CheckpointStore store = _root.Store();
        JsonObject state = Fixtures.State(100);
        state[key] = 1;

        var error = Assert.Throws<ArgumentException>(() => store.Commit(100, state, Fixtures.Config, Fixtures.Files(100), CancellationToken.None));
        Assert.Contains($"'{key}'", error.Message);
        Assert.Empty(store.CommittedSteps());
    }

    [Theory]
    [InlineData("../escape.bin")]
    [InlineData("sub/dir.bin")]
    [InlineData(".hidden")]
    [InlineData("with space")]
    [InlineData("MANIFEST")]
    [InlineData("state.json")]
    public void PayloadFileNamesMustBePlainAndNotReserved(string name)
    {
        CheckpointStore store = _root.Store();
        var files = new Dictionary<string, Action<Stream>> { [name] = s => s.WriteByte(1) };

        Assert.Throws<ArgumentException>(() => store.Commit(100, Fixtures.State(100), Fixtures.Config, files, CancellationToken.None));
    }

    [Theory]
    [InlineData(0, "run")]
    [InlineData(3, "../run")]
    [InlineData(3, ".tmp-run")]
    [InlineData(3, "")]
    public void InvalidOptionsAreRejected(int keep, string runId)
    {
        Assert.ThrowsAny<ArgumentException>(() => new CheckpointStore(new CheckpointOptions(_root.Path, runId, keep)));
    }

    [Fact]
    public void DirectoryFsyncWorksOnThisPlatformAndFailsLoudlyForAMissingDirectory()
    {
        Assert.Equal(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), DirectorySync.TryFlush(_root.Path));
        if (OperatingSystem.IsLinux())
        {
            Assert.Throws<IOException>(() => DirectorySync.TryFlush(Path.Combine(_root.Path, "absent")));
        }
    }
}

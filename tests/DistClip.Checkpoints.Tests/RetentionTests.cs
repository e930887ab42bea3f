namespace DistClip.Checkpoints.Tests;

public sealed class RetentionTests : IDisposable
{
    private readonly TempRoot _root = new();

    public void Dispose() => _root.Dispose();

    [Fact]
    public void KeepingTwoOnlyTheLastTwoOfFiveCommitsRemain()
    {
        CheckpointStore store = _root.Store(keep: 2);
        for (long step = 100; step <= 500; step += 100)
        {
            store.Commit(step);
        }

        Assert.Equal([400L, 500L], store.CommittedSteps());
        Assert.Equal(["latest", "step-000000400", "step-000000500"],
            Directory.GetFileSystemEntries(store.RunDirectory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(500, store.ResolveLatest(CancellationToken.None)!.Step);
    }

    [Fact]
    public void KeepingOneLeavesExactlyTheCheckpointLatestNames()
    {
        CheckpointStore store = _root.Store(keep: 1);
        store.Commit(100);
        store.Commit(200);

        Assert.Equal([200L], store.CommittedSteps());
        Assert.Equal("step-000000200\n", store.LatestText());
    }

    [Fact]
    public void AFailedCommitPrunesNothingSoTheNewestCommittedCheckpointStaysEvenWithKeepOne()
    {
        CheckpointStore store = _root.Store(keep: 1);
        store.Commit(100);
        Dictionary<string, Action<Stream>> files = Fixtures.Files(200);
        files[CheckpointFiles.Model] = _ => throw new IOException("No space left on device");

        Assert.Throws<IOException>(() => store.Commit(200, Fixtures.State(200), Fixtures.Config, files, CancellationToken.None));

        Assert.Equal([100L], store.CommittedSteps());
        Assert.Equal(100, store.ResolveLatest(CancellationToken.None)!.Step);
        Assert.Empty(Directory.GetFileSystemEntries(store.RunDirectory, ".tmp-*"));
    }

    [Fact]
    public void RecommittingAStepAfterFallingBackReplacesItAndDropsTheAbandonedNewerOnes()
    {
        CheckpointStore store = _root.Store(keep: 5);
        store.Commit(100);
        store.Commit(200);
        store.Commit(300);
        // Step 200 and 300 rot; the run resumes from 100 and commits 200 again.
        File.WriteAllBytes(Path.Combine(store.StepDirectory(300), CheckpointFiles.Model), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(store.StepDirectory(200), CheckpointFiles.Model), [1, 2, 3]);
        Assert.Equal(100, store.ResolveLatest(CancellationToken.None)!.Step);

        store.Commit(200);

        Assert.Equal([100L, 200L], store.CommittedSteps());
        ResolvedCheckpoint resolved = store.ResolveLatest(CancellationToken.None)!;
        Assert.Equal(200, resolved.Step);
        Assert.Empty(resolved.Warnings);
        Assert.Empty(Directory.GetFileSystemEntries(store.RunDirectory, ".tmp-*"));
    }
}

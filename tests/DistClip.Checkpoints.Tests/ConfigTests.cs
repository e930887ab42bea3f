using System.Text.Json;

namespace DistClip.Checkpoints.Tests;

public sealed class ConfigTests : IDisposable
{
    private readonly TempRoot _root = new();

    public void Dispose() => _root.Dispose();

    private static readonly JsonElement Stored = Fixtures.Json("""
        {
          "global_batch": 256, "lr": 0.001, "name": "a", "steps": 1000,
          "model": { "vision": { "width": 512, "layers": 12 }, "text": { "width": 512 } },
          "augment": ["crop", "flip"],
          "ranks": [0, 1]
        }
        """);

    private static readonly JsonElement Current = Fixtures.Json("""
        {
          "global_batch": 128, "lr": 0.001, "steps": 2000,
          "model": { "vision": { "width": 256, "layers": 12 }, "text": { "width": 512 } },
          "augment": ["crop", "jitter"],
          "ranks": [0, 1, 2],
          "seed": 7
        }
        """);

    [Fact]
    public void CompareListsEveryDifferingFieldNestedToo_WithBothValues()
    {
        IReadOnlyList<ConfigDifference> differences = CheckpointConfig.Compare(Stored, Current);

        Assert.Equal(
        [
            "augment[1]: checkpoint \"flip\", now \"jitter\"",
            "global_batch: checkpoint 256, now 128",
            "model.vision.width: checkpoint 512, now 256",
            "name: checkpoint \"a\", now (absent)",
            "ranks: checkpoint [0,1], now [0,1,2]",
            "seed: checkpoint (absent), now 7",
            "steps: checkpoint 1000, now 2000",
        ], differences.Select(d => d.ToString()));
    }

    [Fact]
    public void KeyOrderWhitespaceAndNumberSpellingDoNotCountAsDifferences()
    {
        JsonElement a = Fixtures.Json("""{"b": {"y": [1, 2.50], "x": "s"}, "a": 1.0}""");
        JsonElement b = Fixtures.Json("""{"a":1,"b":{"x":"s","y":[1,2.5]}}""");

        Assert.Empty(CheckpointConfig.Compare(a, b));
        Assert.Equal("""{"a":1,"b":{"x":"s","y":[1,2.5]}}""", CheckpointConfig.Canonicalize(a));
        Assert.Equal(CheckpointConfig.Hash(a), CheckpointConfig.Hash(b));
        Assert.NotEqual(CheckpointConfig.Hash(a), CheckpointConfig.Hash(Fixtures.Json("""{"a":2,"b":{"x":"s","y":[1,2.5]}}""")));
    }

    [Fact]
    public void HashIsSha256OfTheCanonicalJson()
    {
        JsonElement config = Fixtures.Json("""{ "b": 1, "a": "x" }""");
        string expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("""{"a":"x","b":1}"""u8));

        Assert.Equal(expected, CheckpointConfig.Hash(config));
    }

    [Fact]
    public void ResumeRefusesAChangedConfigListingEveryField()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100, Fixtures.State(100), Stored, Fixtures.Files(100), CancellationToken.None);
        ResolvedCheckpoint resolved = store.ResolveLatest(CancellationToken.None)!;
        Assert.Equal(CheckpointConfig.Hash(Stored), resolved.ConfigHash);

        var error = Assert.Throws<CheckpointMismatchException>(() => resolved.EnsureConfigCompatible(Current));

        Assert.Equal(7, error.Differences.Count);
        Assert.Contains("global_batch: checkpoint 256, now 128", error.Message);
        Assert.Contains("model.vision.width: checkpoint 512, now 256", error.Message);
        Assert.Contains("steps: checkpoint 1000, now 2000", error.Message);
    }

    [Fact]
    public void AllowedFieldsMayChangeAndOnlyTheOthersAreReported()
    {
        var allowed = new HashSet<string> { "steps", "seed", "augment", "ranks", "name" };

        var error = Assert.Throws<CheckpointMismatchException>(() => CheckpointConfig.EnsureCompatible(Stored, Current, allowed));

        Assert.Equal(["global_batch", "model.vision.width"], error.Differences.Select(d => d.Path));
        allowed.UnionWith(["global_batch", "model.vision"]); // a parent path allows everything beneath it
        CheckpointConfig.EnsureCompatible(Stored, Current, allowed);
    }

    [Fact]
    public void AnAllowedPathDoesNotCoverASiblingThatSharesItsPrefix()
    {
        JsonElement before = Fixtures.Json("""{"steps": 1, "steps_per_eval": 10}""");
        JsonElement after = Fixtures.Json("""{"steps": 2, "steps_per_eval": 20}""");

        var error = Assert.Throws<CheckpointMismatchException>(() => CheckpointConfig.EnsureCompatible(before, after, new HashSet<string> { "steps" }));

        Assert.Equal("steps_per_eval", Assert.Single(error.Differences).Path);
    }

    [Fact]
    public void IdenticalConfigResumesWithoutComplaint()
    {
        CheckpointStore store = _root.Store();
        store.Commit(100, Fixtures.State(100), Stored, Fixtures.Files(100), CancellationToken.None);

        store.ResolveLatest(CancellationToken.None)!.EnsureConfigCompatible(Fixtures.Json(Stored.GetRawText()));
    }

    [Fact]
    public void ANonObjectConfigIsRejected()
    {
        Assert.Throws<ArgumentException>(() =>
            _root.Store().Commit(100, Fixtures.State(100), Fixtures.Json("[1]"), Fixtures.Files(100), CancellationToken.None));
    }
}

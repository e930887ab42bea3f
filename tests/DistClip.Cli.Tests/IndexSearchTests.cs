using System.Text.Json;
using DistClip.Cli.Indexing;

namespace DistClip.Cli.Tests;

[Collection(TrainedRunCollection.Name)]
public sealed class IndexSearchTests(TrainedRun run)
{
    [Fact]
    public void A_directory_is_indexed_with_bad_images_skipped_and_counted()
    {
        string index = BuildDirectoryIndex("counted.index");

        var (header, entries, embeddings) = IndexFile.Read(index);
        Assert.Equal(TrainedRun.ImageCount, header.Count);
        Assert.Equal(TrainedRun.ImageCount, entries.Count);
        Assert.Equal(TrainedRun.BrokenImages, header.Skipped);
        Assert.Equal(TrainedRun.BrokenImages, header.SkippedByReason["UndecodableImage"]);
        Assert.Equal(64, header.Dim);
        Assert.Equal(header.Count * header.Dim, embeddings.Length);
        Assert.Equal(TrainedRun.FirstStep, header.Model.Step);
        Assert.DoesNotContain(entries, e => e.Id.Contains("Unknown", StringComparison.Ordinal));
        double norm = Math.Sqrt(embeddings.Take(header.Dim).Sum(x => (double)x * x));
        Assert.Equal(1.0, norm, 4);
    }

    [Fact]
    public void Searching_for_a_trouser_returns_trousers_in_the_top_five()
    {
        string index = BuildDirectoryIndex("trousers.index");

        // No --checkpoint: the index names the checkpoint that built it.
        var result = Cli.Ok("search", "--index", index, "--top-k", "5", "--json", "a photo of a trouser");

        using var json = JsonDocument.Parse(result.Out);
        var ids = json.RootElement.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("id").GetString()!).ToList();
        Assert.Equal(5, ids.Count);
        Assert.True(ids.All(id => TrainedRun.ClassOf(id) == "Trouser"), $"expected five trousers, got\n{string.Join('\n', ids)}");
    }

    [Fact]
    public void Fashion_mnist_can_be_indexed_directly_with_its_labels()
    {
        string index = Path.Combine(run.Root, "fashion.index");
        Cli.Ok("index", "--checkpoint", run.FirstCheckpoint, "--images", "fashion-mnist", "--limit", "500", "--batch-size", "128", "--out", index);

        var result = Cli.Ok("search", "--index", index, "--checkpoint", run.FirstCheckpoint, "--top-k", "5", "a photo of a bag");

        string[] lines = result.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("\"a photo of a bag\" in 500 images", lines[0], StringComparison.Ordinal);
        Assert.True(lines.Skip(1).All(l => l.EndsWith("  Bag", StringComparison.Ordinal)), result.Out);
    }

    [Fact]
    public void A_csv_of_image_paths_and_captions_is_indexed_with_its_captions_and_a_missing_file_counted()
    {
        string csv = Path.Combine(run.Root, "pairs.csv");
        var rows = Directory.EnumerateFiles(run.ImagesDirectory, "*.png").Where(f => !f.Contains("Unknown", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).Take(30).Select(f => $"{f},a photo of a {TrainedRun.ClassOf(f).ToLowerInvariant()}");
        File.WriteAllLines(csv, ["filepath,title", .. rows, "gone.png,a photo of nothing"]);
        string index = Path.Combine(run.Root, "csv.index");

        var result = Cli.Ok("index", "--checkpoint", run.FirstCheckpoint, "--images", "csv:" + csv, "--out", index, "--json");

        using var json = JsonDocument.Parse(result.Out);
        Assert.Equal(30, json.RootElement.GetProperty("indexed").GetInt32());
        Assert.Equal(1, json.RootElement.GetProperty("skipped_by_reason").GetProperty("MissingImage").GetInt64());
        var (_, entries, _) = IndexFile.Read(index);
        Assert.All(entries, e => Assert.Equal($"a photo of a {TrainedRun.ClassOf(e.Id).ToLowerInvariant()}", e.Caption));
    }

    [Fact]
    public void An_index_built_by_another_model_is_refused_naming_both_models()
    {
        string index = BuildDirectoryIndex("other-model.index");

        // The run directory resolves to its latest checkpoint, ten steps after the one that built the index.
        var result = Cli.Run("search", "--index", index, "--checkpoint", run.RunDirectory, "a photo of a trouser");

        Assert.Equal(1, result.ExitCode);
        Assert.Empty(result.Out);
        Assert.Contains($"was built with clip-micro from checkpoint {run.FirstCheckpoint}", result.Error);
        Assert.Contains($"step {TrainedRun.SecondStep}", result.Error);
        Assert.Contains("not comparable", result.Error);
    }

    [Theory]
    [InlineData("flipped")]
    [InlineData("truncated")]
    [InlineData("not-an-index")]
    [InlineData("future-version")]
    public void A_damaged_index_is_refused_with_a_clear_message(string damage)
    {
        string index = BuildDirectoryIndex($"{damage}.index");
        byte[] bytes = File.ReadAllBytes(index);
        byte[] damaged = damage switch
        {
            "flipped" => Flip(bytes, bytes.Length - 1000),
            "truncated" => bytes[..(bytes.Length / 2)],
            "not-an-index" => "just some text"u8.ToArray(),
            _ => Flip(bytes, 8, 0x03), // format version 1 -> 2
        };
        File.WriteAllBytes(index, damaged);
        string expected = damage switch
        {
            "flipped" or "truncated" => "corrupt: its SHA-256 checksum does not match",
            "not-an-index" => "not a DistClip index",
            _ => "index format version 2; this distclip reads version 1",
        };

        var result = Cli.Run("search", "--index", index, "a photo of a trouser");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"error: {index}: {expected}", result.Error);
        Assert.Contains("rebuild it with 'distclip index'", result.Error);
    }

    [Fact]
    public void A_search_without_a_query_or_an_index_is_a_usage_error()
    {
        Assert.Equal(2, Cli.Run("search", "--index", "x.index").ExitCode);
        Assert.Equal(2, Cli.Run("search", "a photo").ExitCode);
    }

    private string BuildDirectoryIndex(string name)
    {
        string index = Path.Combine(run.Root, name);
        var result = Cli.Ok("index", "--checkpoint", run.FirstCheckpoint, "--images", run.ImagesDirectory, "--out", index, "--batch-size", "64");
        Assert.Contains($"indexed {TrainedRun.ImageCount} images", result.Out);
        Assert.Contains($"skipped {TrainedRun.BrokenImages} (UndecodableImage {TrainedRun.BrokenImages})", result.Out);
        Assert.Contains($"index: {TrainedRun.ImageCount + TrainedRun.BrokenImages}/{TrainedRun.ImageCount + TrainedRun.BrokenImages} images", result.Error);
        return index;
    }

    private static byte[] Flip(byte[] bytes, int at, byte mask = 0xFF)
    {
        var copy = (byte[])bytes.Clone();
        copy[at] ^= mask;
        return copy;
    }
}

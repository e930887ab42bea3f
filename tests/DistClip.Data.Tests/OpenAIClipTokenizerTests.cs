using System.Text.Json;

namespace DistClip.Data.Tests;

/// <summary>
/// OpenAI's CLIP tokenizer, with the vocabulary shipped in DistClip.Data, against the ids its Python
/// reference produced (<c>TestData/clip-bpe/token-ids.json</c>, copied beside the tests at build).
/// </summary>
public sealed class OpenAIClipTokenizerTests
{
    private static OpenAIClipTokenizer Shared => OpenAIClipTokenizer.Shipped;

    public static TheoryData<string> Texts()
    {
        var data = new TheoryData<string>();
        foreach (var c in Cases())
        {
            data.Add(c.GetProperty("text").GetString()!);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void Every_reference_case_gives_the_reference_ids(string text)
    {
        var expected = Cases().Single(c => c.GetProperty("text").GetString() == text);
        int[] bpe = [.. expected.GetProperty("bpe_ids").EnumerateArray().Select(e => e.GetInt32())];
        long[] framed = [.. expected.GetProperty("with_sot_eot").EnumerateArray().Select(e => e.GetInt64())];

        Assert.Equal(bpe, Shared.EncodeIds(text));
        var tokens = new long[framed.Length + 3];
        int used = Shared.Encode(text, tokens.Length, tokens);
        Assert.Equal(framed.Length, used);
        Assert.Equal([.. framed, 0, 0, 0], tokens);
    }

    [Fact]
    public void Vocabulary_and_markers_match_the_reference_header()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(DataFile("token-ids.json")));
        var root = document.RootElement;
        Assert.Equal(root.GetProperty("vocab_size").GetInt32(), Shared.VocabSize);
        Assert.Equal(root.GetProperty("sot").GetInt32(), Shared.StartOfText);
        Assert.Equal(root.GetProperty("eot").GetInt32(), Shared.EndOfText);
    }

    [Fact]
    public void The_shipped_vocabulary_is_the_published_file_and_a_copy_by_path_reads_the_same()
    {
        string copy = Path.Combine(Path.GetTempPath(), $"clip-bpe-{Guid.NewGuid():N}.txt.gz");
        using (var resource = typeof(OpenAIClipTokenizer).Assembly.GetManifestResourceStream("DistClip.Data.clip-bpe." + OpenAIClipTokenizer.FileName)!)
        using (var file = File.Create(copy))
        {
            resource.CopyTo(file);
        }

        try
        {
            Assert.Equal("924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
                Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(copy))).ToLowerInvariant());
            var byPath = OpenAIClipTokenizer.Load(copy);
            Assert.Equal(Path.GetFullPath(copy), byPath.Source);
            Assert.Null(Shared.Source);
            foreach (string text in Cases().Select(c => c.GetProperty("text").GetString()!))
            {
                Assert.Equal(Shared.EncodeIds(text), byPath.EncodeIds(text));
            }
        }
        finally
        {
            File.Delete(copy);
        }
    }

    [Fact]
    public void A_long_text_is_cut_to_the_context_and_still_ends_in_end_of_text()
    {
        var tokens = new long[OpenAIClipTokenizer.ClipContextLength];
        string text = string.Join(' ', Enumerable.Repeat("sneaker", 200));

        int used = Shared.Encode(text, tokens.Length, tokens);

        Assert.Equal(OpenAIClipTokenizer.ClipContextLength, used);
        Assert.Equal(Shared.StartOfText, tokens[0]);
        Assert.Equal(Shared.EndOfText, tokens[^1]);
        Assert.Equal(24781, tokens[1]); // "sneaker</w>", as in the reference case "a photo of a sneaker."
    }

    [Fact]
    public void A_missing_vocabulary_file_is_a_clear_error_naming_the_path()
    {
        string path = Path.Combine(Path.GetTempPath(), $"no-such-dir-{Guid.NewGuid():N}", OpenAIClipTokenizer.FileName);

        var error = Assert.Throws<DataException>(() => OpenAIClipTokenizer.Load(path));

        Assert.Contains(path, error.Message);
        Assert.Contains("not found", error.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_merges_file_is_refused()
    {
        string path = Path.Combine(Path.GetTempPath(), $"not-bpe-{Guid.NewGuid():N}.txt");
        File.WriteAllText(path, "#version: 0.2\ni n\nnot-a-pair\n");
        try
        {
            var error = Assert.Throws<DataException>(() => OpenAIClipTokenizer.Load(path));
            Assert.Contains("not a pair of symbols", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static IEnumerable<JsonElement> Cases()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(DataFile("token-ids.json")));
        return [.. document.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone())];
    }

    /// <summary>A file of this project's <c>TestData/clip-bpe/</c>, as copied to the output directory.</summary>
    private static string DataFile(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "TestData", "clip-bpe", name);
        Assert.True(File.Exists(path), $"expected the tokenizer test data at {path}");
        return path;
    }
}

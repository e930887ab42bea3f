namespace DistClip.Data.Tests;

public sealed class ClipTokenizerTests
{
    private static readonly ClipTokenizer Tokenizer = ClipTokenizer.CreateR50k();

    [Fact]
    public void R50k_has_gpt2_vocabulary_and_markers()
    {
        Assert.Equal(50257, Tokenizer.VocabSize);
        Assert.Equal(50256, Tokenizer.EndOfText);
        Assert.Equal(50256, Tokenizer.StartOfText);
    }

    [Fact]
    public void Known_gpt2_ids_are_produced()
    {
        // GPT-2: "hello" = 31373, " world" = 995.
        Assert.Equal([31373, 995], Tokenizer.EncodeIds("hello world"));
    }

    [Fact]
    public void Fixed_captions_keep_fixed_ids()
    {
        // Computed once with Microsoft.ML.Tokenizers 2.0.1 r50k_base; a change here silently re-maps every checkpoint's text.
        var tokens = new long[12];

        int used = Tokenizer.Encode("A photo of a Sneaker.", 12, tokens);

        Assert.Equal(9, used);
        Assert.Equal([50256, 64, 4590, 286, 257, 10505, 3110, 13, 50256, 0, 0, 0], tokens);
        Assert.Equal([64, 4590, 286, 257, 256, 12, 15600, 14, 4852, 13], Tokenizer.EncodeIds("a photo of a t-shirt/top."));
    }

    [Fact]
    public void Too_long_captions_are_cut_so_the_last_slot_is_end_of_text()
    {
        var tokens = new long[4];

        int used = Tokenizer.Encode("a photo of a sneaker.", 4, tokens);

        Assert.Equal(4, used);
        Assert.Equal([50256, 64, 4590, 50256], tokens);
    }

    [Fact]
    public void Empty_text_is_start_and_end_then_zeros()
    {
        var tokens = new long[5];
        tokens.AsSpan().Fill(-7);

        int used = Tokenizer.Encode("   ", 5, tokens);

        Assert.Equal(2, used);
        Assert.Equal([50256, 50256, 0, 0, 0], tokens);
    }

    [Fact]
    public void Cleanup_unescapes_html_collapses_whitespace_trims_and_lower_cases()
    {
        Assert.Equal("rock & roll <3 t-shirt", Tokenizer.Clean("  Rock &amp; Roll\t\n &lt;3   T-SHIRT  "));
        Assert.Equal("fish & chips", Tokenizer.Clean("Fish &amp;amp; Chips"));
    }

    [Fact]
    public void A_literal_end_of_text_marker_in_a_caption_cannot_end_the_sequence_early()
    {
        var tokens = new long[8];

        int used = Tokenizer.Encode("x<|endoftext|>y", 8, tokens);

        Assert.Equal(4, used);
        Assert.Equal([50256, 87, 88, 50256], tokens.AsSpan(0, 4).ToArray());
    }

    [Fact]
    public void Context_shorter_than_two_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Encode("x", 1, new long[1]));
    }

    [Fact]
    public void Smaller_model_vocabulary_is_refused_with_both_sizes()
    {
        DataException error = Assert.Throws<DataException>(() => Tokenizer.EnsureModelVocabulary(49408));

        Assert.Contains("model vocabulary 49408 is smaller than the tokenizer's 50257", error.Message);
        Tokenizer.EnsureModelVocabulary(50257);
        Tokenizer.EnsureModelVocabulary(50304);
    }

    [Fact]
    public void Concurrent_encoding_matches_sequential_encoding()
    {
        string[] texts = Enumerable.Range(0, 200).Select(i => $"caption number {i} of a {(i % 3 == 0 ? "sneaker" : "bag")}").ToArray();
        long[][] sequential = texts.Select(Encode).ToArray();

        var parallel = new long[texts.Length][];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = Encode(texts[i]));

        Assert.Equal(sequential, parallel);

        static long[] Encode(string text)
        {
            var tokens = new long[16];
            Tokenizer.Encode(text, 16, tokens);
            return tokens;
        }
    }
}

namespace DistClip.Data.Tests;

/// <summary>The one reading of a tokenizer spec, and the names older checkpoints recorded.</summary>
public sealed class TokenizerSpecTests
{
    [Theory]
    [InlineData("r50k", "r50k", null)]
    [InlineData("clip-bpe", "clip-bpe", null)]
    [InlineData("clip-bpe:/data/bpe_simple_vocab_16e6.txt.gz", "clip-bpe", "/data/bpe_simple_vocab_16e6.txt.gz")]
    public void Each_accepted_form_names_its_tokenizer_and_vocabulary(string spec, string name, string? path)
    {
        var parsed = TokenizerSpec.Parse(spec);

        Assert.Equal(name, parsed.Name);
        Assert.Equal(path, parsed.VocabularyPath);
        Assert.Equal(spec, parsed.ToString());
        Assert.True(TokenizerSpec.IsValid(spec, out string error), error);
    }

    [Theory]
    [InlineData("gpt2", "'gpt2' is not r50k, clip-bpe or clip-bpe:PATH")]
    [InlineData("r50k_base", "'r50k_base' is not r50k, clip-bpe or clip-bpe:PATH")]
    [InlineData("clip-bpe:", "'clip-bpe:' names no vocabulary file")]
    [InlineData("CLIP-BPE", "'CLIP-BPE' is not r50k, clip-bpe or clip-bpe:PATH")]
    public void Anything_else_is_refused_with_the_spec_and_the_accepted_forms(string spec, string message)
    {
        var error = Assert.Throws<DataException>(() => TokenizerSpec.Validate(spec));

        Assert.StartsWith(message, error.Message);
        Assert.False(TokenizerSpec.IsValid(spec, out string reported));
        Assert.Equal(error.Message, reported);
    }

    [Fact]
    public void Clip_bpe_without_a_path_opens_the_shipped_vocabulary_and_r50k_opens_gpt2()
    {
        var clip = TokenizerSpec.Parse("clip-bpe").Open();
        var gpt2 = TokenizerSpec.Parse("r50k").Open();

        Assert.Same(OpenAIClipTokenizer.Shipped, clip);
        Assert.Equal(49408, clip.VocabSize);
        Assert.Equal("clip-bpe", clip.Name);
        Assert.Equal(50257, gpt2.VocabSize);
        Assert.Equal("r50k", gpt2.Name);
    }

    [Fact]
    public void A_clip_bpe_path_that_is_missing_is_named_when_opened()
    {
        string path = Path.Combine(Path.GetTempPath(), $"absent-{Guid.NewGuid():N}", OpenAIClipTokenizer.FileName);

        var error = Assert.Throws<DataException>(() => TokenizerSpec.Parse("clip-bpe:" + path).Open());

        Assert.Contains($"OpenAI CLIP BPE vocabulary not found: {path}", error.Message);
    }

    [Theory]
    [InlineData("r50k_base", "r50k")]
    [InlineData("openai-clip-bpe", "clip-bpe")]
    [InlineData("r50k", "r50k")]
    [InlineData("clip-bpe", "clip-bpe")]
    public void Names_recorded_by_older_checkpoints_map_to_todays(string recorded, string name)
    {
        Assert.Equal(name, TokenizerSpec.CanonicalName(recorded));
        Assert.Equal(name, TokenizerSpec.Parse(TokenizerSpec.CanonicalName(recorded)).Name);
    }
}

using DistClip.Config;

namespace DistClip.Data;

/// <summary>Opens the tokenizer a <see cref="TrainOptions.Tokenizer"/> string names.</summary>
public static class TokenizerSource
{
    public static ITextTokenizer Open(string spec)
    {
        if (spec == "r50k")
        {
            return ClipTokenizer.CreateR50k();
        }

        if (spec.StartsWith("clip-bpe:", StringComparison.Ordinal))
        {
            try
            {
                return OpenAIClipTokenizer.Load(spec["clip-bpe:".Length..]);
            }
            catch (DataException e)
            {
                throw new ConfigException("tokenizer", e.Message);
            }
        }

        throw new ConfigException("tokenizer", $"'{spec}' is not r50k or clip-bpe:PATH");
    }

    /// <summary>Refuses a model whose text vocabulary cannot hold every id the tokenizer produces.</summary>
    public static void EnsureFits(ITextTokenizer tokenizer, ClipConfig model)
    {
        if (model.Text.VocabSize < tokenizer.VocabSize)
        {
            throw new ConfigException("tokenizer",
                $"{model.Name} has a text vocabulary of {model.Text.VocabSize}, smaller than the {tokenizer.Name} tokenizer's {tokenizer.VocabSize}; " +
                "choose a model with a larger vocabulary or the matching tokenizer (r50k: 50,257 ids; clip-bpe:PATH: 49,408)");
        }
    }
}

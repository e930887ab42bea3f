using DistClip.Config;

namespace DistClip.Data;

/// <summary>Opens the tokenizer a <see cref="TrainOptions.Tokenizer"/> spec names (read by <see cref="TokenizerSpec"/>), as a settings error when it cannot.</summary>
public static class TokenizerSource
{
    public static ITextTokenizer Open(string spec)
    {
        try
        {
            return TokenizerSpec.Parse(spec).Open();
        }
        catch (DataException e)
        {
            throw new ConfigException("tokenizer", e.Message);
        }
    }

    /// <summary>Refuses a model whose text vocabulary cannot hold every id the tokenizer produces.</summary>
    public static void EnsureFits(ITextTokenizer tokenizer, ClipConfig model)
    {
        if (model.Text.VocabSize < tokenizer.VocabSize)
        {
            throw new ConfigException("tokenizer",
                $"{model.Name} has a text vocabulary of {model.Text.VocabSize}, smaller than the {tokenizer.Name} tokenizer's {tokenizer.VocabSize}; " +
                $"choose a model with a larger vocabulary or the matching tokenizer ({TokenizerSpec.R50k}: 50,257 ids; {TokenizerSpec.ClipBpe}: 49,408)");
        }
    }
}

namespace DistClip.Data;

/// <summary>
/// The one reading of a tokenizer spec, as training options, checkpoints and the CLI name a tokenizer:
/// <c>r50k</c> (GPT-2's BPE, 50,257 ids), <c>clip-bpe</c> (OpenAI's CLIP BPE, 49,408 ids, from the
/// vocabulary shipped in this assembly) or <c>clip-bpe:PATH</c> (the same from a file of your own).
/// The names are also <see cref="ITextTokenizer.Name"/>, so what a checkpoint records opens again here.
/// </summary>
public sealed record TokenizerSpec
{
    public const string R50k = "r50k";
    public const string ClipBpe = "clip-bpe";

    /// <summary>The accepted forms, for messages.</summary>
    public const string Forms = "r50k, clip-bpe or clip-bpe:PATH";

    private const string ClipBpePrefix = ClipBpe + ":";

    private TokenizerSpec(string name, string? vocabularyPath)
    {
        Name = name;
        VocabularyPath = vocabularyPath;
    }

    /// <summary><see cref="R50k"/> or <see cref="ClipBpe"/>.</summary>
    public string Name { get; }

    /// <summary>For <c>clip-bpe:PATH</c>, the PATH; null means the shipped vocabulary.</summary>
    public string? VocabularyPath { get; }

    /// <summary>Reads a spec (a name recorded by an older checkpoint goes through <see cref="CanonicalName"/> first).</summary>
    /// <exception cref="DataException">The spec is none of <see cref="Forms"/>; the message quotes it.</exception>
    public static TokenizerSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.StartsWith(ClipBpePrefix, StringComparison.Ordinal))
        {
            string path = spec[ClipBpePrefix.Length..];
            return string.IsNullOrWhiteSpace(path)
                ? throw new DataException($"'{spec}' names no vocabulary file; use clip-bpe for the shipped one or clip-bpe:PATH for your own")
                : new TokenizerSpec(ClipBpe, path);
        }

        return spec switch
        {
            R50k => new TokenizerSpec(R50k, null),
            ClipBpe => new TokenizerSpec(ClipBpe, null),
            _ => throw new DataException($"'{spec}' is not {Forms}"),
        };
    }

    /// <summary>Throws <see cref="DataException"/> with a clear message unless <paramref name="spec"/> is one of <see cref="Forms"/>.</summary>
    public static void Validate(string spec) => Parse(spec);

    /// <summary>The same check for settings code that reports its own errors: false with the message in <paramref name="error"/>.</summary>
    public static bool IsValid(string spec, out string error)
    {
        try
        {
            Parse(spec);
            error = "";
            return true;
        }
        catch (DataException e)
        {
            error = e.Message;
            return false;
        }
    }

    /// <summary>
    /// Today's name for a recorded tokenizer name: checkpoints and indexes written before the names were
    /// unified say <c>r50k_base</c> and <c>openai-clip-bpe</c>. Unknown names come back unchanged.
    /// </summary>
    public static string CanonicalName(string recorded) => recorded switch
    {
        "r50k_base" => R50k,
        "openai-clip-bpe" => ClipBpe,
        _ => recorded,
    };

    /// <summary>Opens the tokenizer; for clip-bpe, <paramref name="vocabularyOverride"/> (a file, e.g. the CLI's <c>--vocab</c>) replaces the vocabulary named here.</summary>
    /// <exception cref="DataException">The vocabulary file is missing or is not a CLIP merges file.</exception>
    public ITextTokenizer Open(string? vocabularyOverride = null) => Name switch
    {
        R50k => ClipTokenizer.CreateR50k(),
        _ => (vocabularyOverride ?? VocabularyPath) is { } path ? OpenAIClipTokenizer.Load(path) : OpenAIClipTokenizer.Shipped,
    };

    public override string ToString() => VocabularyPath is null ? Name : ClipBpePrefix + VocabularyPath;
}

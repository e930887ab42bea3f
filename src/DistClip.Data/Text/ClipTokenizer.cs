using System.Net;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace DistClip.Data;

/// <summary>
/// Caption tokenizer: CLIP-like cleanup, then GPT-2's r50k_base byte-level BPE from the
/// Microsoft.ML.Tokenizers.Data.R50kBase package (offline; nothing is downloaded). Sequences are
/// <c>[SOT, bpe…, EOT, 0…]</c>; GPT-2 has a single special token, so SOT and EOT are both
/// <c>&lt;|endoftext|&gt;</c> (its document-start convention). Pool text features at
/// <c>length - 1</c>, not at the argmax id. Thread-safe.
/// </summary>
public sealed class ClipTokenizer : ITextTokenizer
{
    public const int R50kVocabSize = 50257;

    private readonly Tokenizer _bpe;

    private ClipTokenizer(Tokenizer bpe, int vocabSize, int endOfText)
    {
        _bpe = bpe;
        VocabSize = vocabSize;
        EndOfText = endOfText;
        StartOfText = endOfText;
    }

    /// <summary>Ids are in [0, VocabSize).</summary>
    public string Name => TokenizerSpec.R50k;

    public int VocabSize { get; }

    public int EndOfText { get; }

    /// <summary>Same id as <see cref="EndOfText"/>: GPT-2 marks a document start with &lt;|endoftext|&gt;.</summary>
    public int StartOfText { get; }

    /// <summary>Padding id after the end-of-text token.</summary>
    public int Padding => 0;

    public static ClipTokenizer CreateR50k() =>
        new(TiktokenTokenizer.CreateForEncoding("r50k_base"), R50kVocabSize, endOfText: 50256);

    /// <summary>HTML-unescapes (twice, as CLIP does for doubly-escaped web text), collapses whitespace, trims, lower-cases.</summary>
    public string Clean(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string unescaped = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text));
        var builder = new StringBuilder(unescaped.Length);
        bool pendingSpace = false;
        foreach (char c in unescaped)
        {
            if (char.IsWhiteSpace(c))
            {
                pendingSpace = builder.Length > 0;
                continue;
            }

            if (pendingSpace)
            {
                builder.Append(' ');
                pendingSpace = false;
            }

            builder.Append(c);
        }

        return builder.ToString().ToLowerInvariant();
    }

    /// <summary>The cleaned text's BPE ids, without SOT/EOT.</summary>
    public IReadOnlyList<int> EncodeIds(string text)
    {
        IReadOnlyList<int> ids = _bpe.EncodeToIds(Clean(text));

        // A caption that literally contains "<|endoftext|>" would otherwise put the end marker mid-sequence.
        return ids.Contains(EndOfText) ? ids.Where(id => id != EndOfText).ToArray() : ids;
    }

    /// <summary>
    /// Writes <c>[SOT, bpe…, EOT]</c> then zeros up to <paramref name="contextLength"/>; returns the
    /// used length (EOT sits at return - 1). Too long a caption keeps its first ids and still ends in EOT.
    /// </summary>
    public int Encode(string text, int contextLength, Span<long> tokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        return TokenSequence.Pack(EncodeIds(text), StartOfText, EndOfText, contextLength, tokens);
    }

    /// <summary>Refuses a text tower whose embedding table cannot hold every id this tokenizer emits.</summary>
    public void EnsureModelVocabulary(int modelVocabSize)
    {
        if (modelVocabSize < VocabSize)
        {
            throw new DataException(
                $"model vocabulary {modelVocabSize} is smaller than the tokenizer's {VocabSize} (r50k_base ids go up to {VocabSize - 1}); set the text tower's vocab size to at least {VocabSize}.");
        }
    }
}

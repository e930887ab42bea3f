namespace DistClip.Data;

/// <summary>
/// What a text tower needs from a tokenizer: ids in [0, <see cref="VocabSize"/>) laid out as
/// <c>[SOT, bpe…, EOT, 0…]</c>, with the features pooled at <c>length - 1</c>.
/// <see cref="OpenAIClipTokenizer"/> implements it; <see cref="ClipTokenizer"/> (GPT-2 r50k) has the
/// same members, so callers that accept either can take this interface.
/// </summary>
public interface ITextTokenizer
{
    /// <summary>A stable name recorded with what the tokens produce (a checkpoint, an index): a <see cref="TokenizerSpec"/> name, <c>r50k</c> or <c>clip-bpe</c>.</summary>
    string Name { get; }

    /// <summary>Ids are in [0, VocabSize).</summary>
    int VocabSize { get; }

    int StartOfText { get; }

    int EndOfText { get; }

    /// <summary>The cleaned text's BPE ids, without SOT/EOT.</summary>
    IReadOnlyList<int> EncodeIds(string text);

    /// <summary>
    /// Writes <c>[SOT, bpe…, EOT]</c> then zeros up to <paramref name="contextLength"/>; returns the used
    /// length (EOT sits at return - 1). Too long a text keeps its first ids and still ends in EOT.
    /// </summary>
    int Encode(string text, int contextLength, Span<long> tokens);
}

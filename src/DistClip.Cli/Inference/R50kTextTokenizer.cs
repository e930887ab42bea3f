using DistClip.Data;

namespace DistClip.Cli.Inference;

/// <summary>
/// The trainer's GPT-2 tokenizer behind <see cref="ITextTokenizer"/>. Temporary: once
/// <see cref="ClipTokenizer"/> implements the interface itself this adapter goes away.
/// </summary>
internal sealed class R50kTextTokenizer(ClipTokenizer inner) : ITextTokenizer
{
    public const string TokenizerName = "r50k_base";

    public ClipTokenizer Inner { get; } = inner;

    public string Name => TokenizerName;

    public int VocabSize => Inner.VocabSize;

    public int StartOfText => Inner.StartOfText;

    public int EndOfText => Inner.EndOfText;

    public IReadOnlyList<int> EncodeIds(string text) => Inner.EncodeIds(text);

    public int Encode(string text, int contextLength, Span<long> tokens) => Inner.Encode(text, contextLength, tokens);
}

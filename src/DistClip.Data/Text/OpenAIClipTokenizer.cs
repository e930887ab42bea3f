using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace DistClip.Data;

/// <summary>
/// OpenAI CLIP's tokenizer: byte-level BPE over lower-cased text with an end-of-word marker,
/// 49,408 ids (<c>&lt;|startoftext|&gt;</c> 49406, <c>&lt;|endoftext|&gt;</c> 49407), built from the
/// published merges file <c>bpe_simple_vocab_16e6.txt.gz</c>: the copy built into this assembly
/// (<see cref="Shipped"/>; licence and origin in <c>Text/clip-bpe/</c>) or one given by path. The BPE itself is Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>; this class adds
/// the reference's vocabulary layout, cleanup and pre-tokenisation. Thread-safe.
/// </summary>
/// <remarks>
/// Differences from the Python reference: ftfy's mojibake repair and NFC composition are not applied
/// (the process runs with invariant globalization); HTML entities are decoded by
/// <see cref="WebUtility.HtmlDecode(string)"/>. Neither changes ordinary captions.
/// </remarks>
public sealed class OpenAIClipTokenizer : ITextTokenizer
{
    public const string FileName = "bpe_simple_vocab_16e6.txt.gz";
    public const int ClipVocabSize = 49408;
    public const int ClipContextLength = 77;
    public const string StartToken = "<|startoftext|>";
    public const string EndToken = "<|endoftext|>";

    // The reference's table: 256 byte symbols, the same with "</w>", one id per merge, then the two
    // special tokens. 49152 - 256 - 2 merge lines follow the version header.
    private const int MergeCount = 49152 - 256 - 2;
    private const string EndOfWord = "</w>";

    // The reference pattern (case-insensitive): special tokens, English contractions, letter runs,
    // single digits, runs of anything else that is not whitespace.
    private static readonly Regex Pieces = new(
        @"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        RegexOptions.IgnoreCase | RegexOptions.Compiled | RegexOptions.CultureInvariant);

    private static readonly Regex Whitespace = new(@"\s+", RegexOptions.Compiled);

    private const string ShippedResource = "DistClip.Data.clip-bpe." + FileName;

    // Reading the 49k merges takes a moment and the result is immutable: build the shipped one once.
    private static readonly Lazy<OpenAIClipTokenizer> ShippedCopy = new(() =>
    {
        using var resource = typeof(OpenAIClipTokenizer).Assembly.GetManifestResourceStream(ShippedResource)
            ?? throw new InvalidOperationException($"embedded resource {ShippedResource} is missing from {typeof(OpenAIClipTokenizer).Assembly.GetName().Name}");
        return Build(ReadMerges(resource, $"the shipped {FileName}"), source: null);
    });

    private readonly BpeTokenizer _bpe;

    private OpenAIClipTokenizer(BpeTokenizer bpe, string? source)
    {
        _bpe = bpe;
        Source = source;
    }

    /// <summary>OpenAI's vocabulary as shipped in this assembly (the same file open_clip ships).</summary>
    public static OpenAIClipTokenizer Shipped => ShippedCopy.Value;

    public string Name => TokenizerSpec.ClipBpe;

    /// <summary>The vocabulary file this tokenizer was built from (full path); null for the <see cref="Shipped"/> copy.</summary>
    public string? Source { get; }

    public int VocabSize => ClipVocabSize;

    public int StartOfText => ClipVocabSize - 2;

    public int EndOfText => ClipVocabSize - 1;

    /// <summary>Reads a merges file of your own (gzip-compressed, as OpenAI publishes it, or plain text); <see cref="Shipped"/> needs none.</summary>
    /// <exception cref="DataException">The file is missing or is not a CLIP merges file; the message says which and where.</exception>
    public static OpenAIClipTokenizer Load(string vocabularyPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(vocabularyPath);
        string path = Path.GetFullPath(vocabularyPath);
        if (!File.Exists(path))
        {
            throw new DataException(
                $"OpenAI CLIP BPE vocabulary not found: {path}. It is the file {FileName} published with OpenAI's CLIP " +
                "(MIT licence); DistClip ships a copy, used when no path is given (--tokenizer clip-bpe), and downloads nothing.");
        }

        List<string> merges;
        try
        {
            using var file = File.OpenRead(path);
            merges = ReadMerges(file, path);
        }
        catch (IOException e)
        {
            throw new DataException($"{path}: cannot be read as {FileName} ({e.Message}).", e);
        }

        return Build(merges, path);
    }

    private static OpenAIClipTokenizer Build(List<string> merges, string? source)
    {
        string where = source ?? $"the shipped {FileName}";
        var vocabulary = new Dictionary<string, int>(ClipVocabSize, StringComparer.Ordinal);
        string[] byteSymbols = ByteSymbols();
        foreach (string symbol in byteSymbols)
        {
            vocabulary.Add(symbol, vocabulary.Count);
        }

        foreach (string symbol in byteSymbols)
        {
            vocabulary.Add(symbol + EndOfWord, vocabulary.Count);
        }

        foreach (string merge in merges)
        {
            // A repeated merge result would shift every later id; the published file has none.
            if (!vocabulary.TryAdd(merge.Replace(" ", "", StringComparison.Ordinal), vocabulary.Count))
            {
                throw new DataException($"{where}: merge '{merge}' repeats an earlier symbol; not a CLIP merges file.");
            }
        }

        var special = new Dictionary<string, int>(StringComparer.Ordinal)
        {
            [StartToken] = vocabulary.Count,
            [EndToken] = vocabulary.Count + 1,
        };
        foreach (var (token, id) in special)
        {
            vocabulary.Add(token, id);
        }

        var bpe = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = merges,
            EndOfWordSuffix = EndOfWord,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(Pieces, special),
            SpecialTokens = special,
        });
        return new OpenAIClipTokenizer(bpe, source);
    }

    /// <summary>The reference's cleanup: HTML-unescape twice, collapse whitespace, trim, lower-case.</summary>
    public static string Clean(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string unescaped = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text)).Trim();
        return Whitespace.Replace(unescaped, " ").Trim().ToLowerInvariant();
    }

    public IReadOnlyList<int> EncodeIds(string text) => _bpe.EncodeToIds(Clean(text));

    public int Encode(string text, int contextLength, Span<long> tokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        return TokenSequence.Pack(EncodeIds(text), StartOfText, EndOfText, contextLength, tokens);
    }

    /// <summary>The merges of a gzip-compressed or plain merges file; <paramref name="path"/> names it in errors.</summary>
    private static List<string> ReadMerges(Stream file, string path)
    {
        try
        {
            bool gzip = file.ReadByte() == 0x1f && file.ReadByte() == 0x8b;
            file.Position = 0;
            using Stream content = gzip ? new GZipStream(file, CompressionMode.Decompress, leaveOpen: true) : file;
            using var reader = new StreamReader(content, new UTF8Encoding(false, throwOnInvalidBytes: true));

            // Line 0 is the "#version" header; the vocabulary uses exactly the next MergeCount lines.
            string? header = reader.ReadLine();
            var merges = new List<string>(MergeCount);
            while (merges.Count < MergeCount && reader.ReadLine() is { } line)
            {
                if (line.Split(' ').Length != 2)
                {
                    throw new DataException($"{path}: line {merges.Count + 2} is '{line}', not a pair of symbols; not a CLIP merges file.");
                }

                merges.Add(line);
            }

            if (header is null || merges.Count < MergeCount)
            {
                throw new DataException($"{path}: {merges.Count} merges, expected {MergeCount}; the file is truncated or not {FileName}.");
            }

            return merges;
        }
        catch (Exception e) when (e is InvalidDataException or DecoderFallbackException or IOException)
        {
            throw new DataException($"{path}: cannot be read as {FileName} ({e.Message}).", e);
        }
    }

    /// <summary>
    /// GPT-2's bytes_to_unicode, in the reference's order: printable bytes map to themselves, the
    /// other 68 to U+0100 onwards. Ids 0–255 follow this order.
    /// </summary>
    private static string[] ByteSymbols()
    {
        var bytes = new List<int>();
        for (int b = '!'; b <= '~'; b++)
        {
            bytes.Add(b);
        }

        for (int b = 0xA1; b <= 0xAC; b++)
        {
            bytes.Add(b);
        }

        for (int b = 0xAE; b <= 0xFF; b++)
        {
            bytes.Add(b);
        }

        var symbols = bytes.Select(b => ((char)b).ToString()).ToList();
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!bytes.Contains(b))
            {
                symbols.Add(((char)(256 + next++)).ToString());
            }
        }

        return [.. symbols];
    }
}

using System.Globalization;
using DistClip.Cli.CommandLine;
using DistClip.Cli.Indexing;
using DistClip.Cli.Inference;
using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using TorchSharp;

namespace DistClip.Cli.Commands;

/// <summary>
/// Text-to-image search over an index: the query's text embedding against every stored image
/// embedding. Only the model that built the index may search it (same parameters, by SHA-256):
/// embeddings of two models live in unrelated spaces, and mixing them returns confident nonsense.
/// </summary>
internal sealed class SearchCommand : ICommand
{
    public string Name => "search";

    public string Summary => "find the images of an index that best match a text";

    public string Usage => "--index INDEX [--checkpoint DIR] [options] \"a white sneaker\"";

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("index", "INDEX", "an index written by 'distclip index'"),
        .. ModelSourceOptions.Specs,
        new("top-k", "K", "results shown (default 10)"),
        new("json", null, "print JSON instead of a table"),
    ];

    public int Run(ParsedArguments args, CliContext context, CancellationToken ct)
    {
        string indexPath = args.Required("index", "the index to search");
        string query = string.Join(' ', args.Positionals).Trim();
        if (query.Length == 0)
        {
            throw new UsageException("search: give the text to search for, e.g. distclip search --index INDEX \"a white sneaker\"");
        }

        int topK = args.Int("top-k", 10, min: 1);
        var given = ModelSourceOptions.From(args, required: false);
        IndexHeader header;
        IReadOnlyList<IndexEntry> entries;
        float[] embeddings;
        try
        {
            (header, entries, embeddings) = IndexFile.Read(indexPath);
        }
        catch (IndexFormatException e)
        {
            throw new RefusedException(e.Message, e);
        }

        using var model = ModelLoader.Load(given.Given ? given : RecordedSource(header, given, indexPath), context.Logger, ct);
        EnsureSameModel(Path.GetFullPath(indexPath), header.Model, model.Identity);

        var hits = new List<SearchHit>();
        if (header.Count > 0)
        {
            using var scope = torch.NewDisposeScope();
            var images = torch.tensor(embeddings, [header.Count, header.Dim]); // [N, D]
            var text = Embeddings.Texts(model, [query]); // [1, D]
            var (scores, indexes) = images.matmul(text.t()).squeeze(1).topk(Math.Min(topK, header.Count)); // [k]
            float[] s = scores.data<float>().ToArray();
            long[] i = indexes.data<long>().ToArray();
            for (int r = 0; r < s.Length; r++)
            {
                var entry = entries[(int)i[r]];
                hits.Add(new SearchHit(r + 1, Math.Round(s[r], 6), entry.Id, entry.Caption, entry.Label));
            }
        }

        if (args.Flag("json"))
        {
            context.WriteJson(new { Query = query, Index = Path.GetFullPath(indexPath), header.Count, Model = model.Identity.Describe(), Results = hits });
            return ExitCodes.Success;
        }

        context.Out.WriteLine($"\"{query}\" in {header.Count} images ({header.Images})");
        foreach (var hit in hits)
        {
            string about = hit.Label ?? hit.Caption ?? "";
            context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{hit.Rank,4}  {hit.Score,7:F4}  {hit.Id}{(about.Length > 0 ? "  " + about : "")}"));
        }

        return ExitCodes.Success;
    }

    /// <summary>Refuses an index built by a different model, naming both.</summary>
    internal static void EnsureSameModel(string indexPath, ModelIdentity built, ModelIdentity given)
    {
        if (built.ParametersSha256 == given.ParametersSha256 && SameTokenizer(built, given) && built.EmbedDim == given.EmbedDim)
        {
            return;
        }

        throw new RefusedException(
            $"index {indexPath} was built with {built.Describe()}, but the model given is {given.Describe()}. " +
            "Embeddings of different models are not comparable: search with the model that built the index " +
            "(or leave out --checkpoint to use it), or rebuild the index with this model (distclip index).");
    }

    /// <summary>The model the index names, from where it was then; its config comes from the index itself.</summary>
    private static ModelSourceOptions RecordedSource(IndexHeader header, ModelSourceOptions given, string indexPath)
    {
        var model = header.Model;
        bool present = model.Source == ModelIdentity.FromCheckpoint ? Directory.Exists(model.Location) : File.Exists(model.Location);
        if (!present)
        {
            throw new RefusedException(
                $"index {Path.GetFullPath(indexPath)} was built with {model.Describe()}, which is no longer at {model.Location}; " +
                $"pass --{(model.Source == ModelIdentity.FromCheckpoint ? "checkpoint" : "pretrained")} with the same model");
        }

        ClipConfig config;
        try
        {
            config = ClipConfig.Parse(model.Config, $"{indexPath} (model config)");
        }
        catch (ConfigException e)
        {
            throw new RefusedException(e.Message, e);
        }

        return given with
        {
            Checkpoint = model.Source == ModelIdentity.FromCheckpoint ? model.Location : null,
            Pretrained = model.Source == ModelIdentity.FromPretrained ? model.Location : null,
            Vocabulary = given.Vocabulary ?? model.Vocabulary,
            Config = config,
        };
    }

    // Indexes built before the tokenizer names were unified say r50k_base or openai-clip-bpe.
    private static bool SameTokenizer(ModelIdentity built, ModelIdentity given) =>
        TokenizerSpec.CanonicalName(built.Tokenizer) == TokenizerSpec.CanonicalName(given.Tokenizer);

    internal sealed record SearchHit(int Rank, double Score, string Id, string? Caption, string? Label);
}

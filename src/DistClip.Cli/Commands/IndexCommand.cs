using System.Globalization;
using DistClip.Cli.CommandLine;
using DistClip.Cli.Indexing;
using DistClip.Cli.Inference;

namespace DistClip.Cli.Commands;

/// <summary>Embeds an image collection into an index file that <c>distclip search</c> queries with text.</summary>
internal sealed class IndexCommand : ICommand
{
    // Progress lines per run: enough to see it move, few enough for a log file.
    private const int ProgressLines = 20;

    public string Name => "index";

    public string Summary => "embed a collection of images into an index file for text search";

    public string Usage => "--checkpoint DIR --images DIR|wds:PATTERN|csv:FILE|fashion-mnist --out INDEX [options]";

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        .. ModelSourceOptions.Specs,
        new("images", "SOURCE", "a directory (every image file below it), wds:PATTERN (tar shards), csv:FILE, or fashion-mnist[:train|:test]"),
        new("out", "INDEX", "the index file to write (replaced atomically)"),
        new("batch-size", "N", "images per forward pass (default 256)"),
        new("decode-threads", "N", "parallel image decoders (default: processor count)"),
        new("limit", "N", "index only the first N images (default: all)"),
        new("json", null, "print the summary as JSON"),
    ];

    public int Run(ParsedArguments args, CliContext context, CancellationToken ct)
    {
        string imagesSpec = args.Required("images", "the images to index");
        string output = args.Required("out", "the index file to write");
        int batchSize = args.Int("batch-size", 256, min: 1);
        int decodeThreads = args.Int("decode-threads", Environment.ProcessorCount, min: 1);
        int limit = args.Int("limit", 0, min: 0);
        if (args.Positionals.Count > 0)
        {
            throw new UsageException($"index: unexpected argument '{args.Positionals[0]}'");
        }

        string? outputDirectory = Path.GetDirectoryName(Path.GetFullPath(output));
        if (outputDirectory is not null && !Directory.Exists(outputDirectory))
        {
            throw new UsageException($"index: the directory of --out, {outputDirectory}, does not exist");
        }

        var source = ModelSourceOptions.From(args);
        var images = ImageCollection.Open(imagesSpec, context.Logger);
        using var model = ModelLoader.Load(source, context.Logger, ct);
        var progress = new ProgressPrinter(context.Error);
        var (entries, embeddings) = IndexBuilder.Build(model, images, batchSize, decodeThreads, limit, progress, ct);
        var skipped = images.Skips.Snapshot().Where(kv => kv.Value > 0).ToDictionary(kv => kv.Key.ToString(), kv => kv.Value);
        var header = new IndexHeader(
            IndexFile.FormatVersion,
            DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            model.Identity,
            images.Description,
            entries.Count,
            model.Model.Config.EmbedDim,
            images.Skips.Total,
            skipped);
        IndexFile.Write(output, header, entries, embeddings, ct);

        string full = Path.GetFullPath(output);
        if (args.Flag("json"))
        {
            context.WriteJson(new { Index = full, Images = images.Description, Indexed = entries.Count, header.Skipped, SkippedByReason = skipped, Model = model.Identity });
        }
        else
        {
            string reasons = skipped.Count == 0 ? "" : $" ({string.Join(", ", skipped.Select(kv => $"{kv.Key} {kv.Value}"))})";
            context.Out.WriteLine($"indexed {entries.Count} images of {images.Description} into {full}; skipped {header.Skipped}{reasons}");
            context.Out.WriteLine($"model: {model.Identity.Describe()}");
        }

        return ExitCodes.Success;
    }

    /// <summary>Writes "index: done/total" lines to stderr about every 5% of the way, and at the end.</summary>
    private sealed class ProgressPrinter(TextWriter error) : IProgress<IndexProgress>
    {
        private int _lastStep = -1;

        public void Report(IndexProgress value)
        {
            int step = value.Total == 0 ? ProgressLines : value.Done * ProgressLines / value.Total;
            if (step == _lastStep && value.Done < value.Total)
            {
                return;
            }

            _lastStep = step;
            error.WriteLine($"index: {value.Done}/{value.Total} images ({value.Skipped} skipped)");
        }
    }
}

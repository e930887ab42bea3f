using DistClip.Cli.CommandLine;
using DistClip.Data;
using Microsoft.Extensions.Logging;

namespace DistClip.Cli.Indexing;

/// <summary>
/// Images to index, by position. A sample that cannot be loaded is skipped and counted in
/// <see cref="Skips"/> by reason, never fatal: one broken file must not cost the whole collection.
/// </summary>
internal interface IImageCollection
{
    /// <summary>What the user named (<c>DIR</c>, <c>wds:PATTERN</c>, <c>csv:FILE</c>, <c>fashion-mnist</c>).</summary>
    string Description { get; }

    int Count { get; }

    SkipCounters Skips { get; }

    /// <summary>Decodes image <paramref name="index"/> into <paramref name="pixels"/>; safe to call from several threads.</summary>
    bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out IndexEntry entry);
}

internal static class ImageCollection
{
    /// <summary>Opens <c>DIR</c> (every image file below it), <c>wds:PATTERN</c>, <c>csv:FILE</c> or <c>fashion-mnist[:train|:test]</c>.</summary>
    public static IImageCollection Open(string spec, ILogger logger)
    {
        try
        {
            if (spec.StartsWith("wds:", StringComparison.Ordinal))
            {
                var shards = WebDatasetTar.Open(spec["wds:".Length..], logger);
                return new DatasetImages(spec, shards, (i, caption, _) => new IndexEntry(shards.Key(i), caption));
            }

            if (spec.StartsWith("csv:", StringComparison.Ordinal))
            {
                var csv = CsvDataset.Open(spec["csv:".Length..], new CsvOptions(), logger);
                return new DatasetImages(spec, csv, (i, caption, _) => new IndexEntry(csv.ImagePath(i), caption));
            }

            if (spec is "fashion-mnist" or "fashion-mnist:test" or "fashion-mnist:train")
            {
                var split = spec.EndsWith(":train", StringComparison.Ordinal) ? FashionMnistSplit.Train : FashionMnistSplit.Test;
                var mnist = FashionMnistDataset.Open(split, logger: logger);
                // Captions here are generated from the class, so the class is what identifies the image.
                return new DatasetImages(spec, mnist, (i, _, label) => new IndexEntry($"{mnist.Name}/{i:D5}", Label: FashionMnistDataset.Classes[label]));
            }
        }
        catch (DataException e)
        {
            throw new RefusedException($"images '{spec}': {e.Message}", e);
        }

        if (Directory.Exists(spec))
        {
            return new DirectoryImages(spec, logger);
        }

        throw new UsageException($"--images '{spec}' is not a directory, wds:PATTERN, csv:FILE or fashion-mnist");
    }

    private sealed class DatasetImages(string description, IImageTextDataset dataset, Func<int, string, int, IndexEntry> describe) : IImageCollection
    {
        public string Description => description;

        public int Count => dataset.Count;

        public SkipCounters Skips => dataset.Skips;

        public bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out IndexEntry entry)
        {
            bool ok = dataset.TryLoad(index, spec, pixels, out string caption, out int label);
            entry = ok ? describe(index, caption, label) : new IndexEntry(index.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return ok;
        }
    }

    /// <summary>Every file below a directory whose extension is an image format ImageSharp reads, in ordinal path order.</summary>
    private sealed class DirectoryImages : IImageCollection
    {
        private readonly string[] _files;
        private readonly ImageDecoder _decoder = new();

        public DirectoryImages(string directory, ILogger logger)
        {
            string root = Path.GetFullPath(directory);
            var extensions = WebDatasetTar.ImageExtensions.Select(e => "." + e).ToHashSet(StringComparer.OrdinalIgnoreCase);
            _files = [.. Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                .Where(f => extensions.Contains(Path.GetExtension(f)))
                .Order(StringComparer.Ordinal)];
            Description = root;
            Skips = new SkipCounters(logger);
        }

        public string Description { get; }

        public int Count => _files.Length;

        public SkipCounters Skips { get; }

        public bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out IndexEntry entry)
        {
            string path = _files[index];
            entry = new IndexEntry(path);
            byte[] bytes;
            try
            {
                if (new FileInfo(path).Length > _decoder.Options.MaxEncodedBytes)
                {
                    Skips.Record(SkipReason.ImageTooLarge, path);
                    return false;
                }

                bytes = File.ReadAllBytes(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Deleted or unreadable since the listing: the same as a missing image.
                Skips.Record(SkipReason.MissingImage, path);
                return false;
            }

            if (!_decoder.TryDecode(bytes, spec, pixels, out var reason, out _))
            {
                Skips.Record(reason, path);
                return false;
            }

            return true;
        }
    }
}

using System.Runtime.ExceptionServices;
using DistClip.Cli.Inference;

namespace DistClip.Cli.Indexing;

/// <summary>How far <see cref="IndexBuilder"/> has come: images looked at (loaded or skipped) of the total.</summary>
internal sealed record IndexProgress(int Done, int Total, long Skipped);

/// <summary>
/// Embeds a collection in batches: images of a batch are decoded in parallel, the survivors
/// go through the image tower together, and skipped ones are counted, not fatal.
/// </summary>
internal static class IndexBuilder
{
    /// <param name="limit">Index only the first N images (0: all).</param>
    /// <returns>The entries that loaded, in collection order, and their unit embeddings (entries × D, row-major).</returns>
    public static (List<IndexEntry> Entries, float[] Embeddings) Build(
        LoadedModel model, IImageCollection images, int batchSize, int decodeThreads, int limit, IProgress<IndexProgress>? progress, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(decodeThreads, 1);
        int total = limit > 0 ? Math.Min(limit, images.Count) : images.Count;
        int dim = model.Model.Config.EmbedDim;
        int pixelCount = model.Spec.PixelCount;
        var entries = new List<IndexEntry>(total);
        var embeddings = new float[(long)total * dim];
        var pixels = new float[batchSize * pixelCount];
        var loaded = new bool[batchSize];
        var found = new IndexEntry[batchSize];
        for (int first = 0; first < total; first += batchSize)
        {
            ct.ThrowIfCancellationRequested();
            int n = Math.Min(batchSize, total - first);
            Decode(images, model, first, n, pixels, loaded, found, decodeThreads, ct);

            // Move the survivors to the front, in order, so the tower sees one dense batch.
            int kept = 0;
            for (int j = 0; j < n; j++)
            {
                if (!loaded[j])
                {
                    continue;
                }

                if (kept != j)
                {
                    pixels.AsSpan(j * pixelCount, pixelCount).CopyTo(pixels.AsSpan(kept * pixelCount));
                }

                entries.Add(found[j]);
                kept++;
            }

            if (kept > 0)
            {
                using var batch = Embeddings.Images(model, pixels.AsSpan(0, kept * pixelCount), kept); // [kept, D]
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(batch.bytes).CopyTo(embeddings.AsSpan((entries.Count - kept) * dim));
            }

            progress?.Report(new IndexProgress(first + n, total, images.Skips.Total));
        }

        return (entries, embeddings[..(entries.Count * dim)]);
    }

    private static void Decode(IImageCollection images, LoadedModel model, int first, int n, float[] pixels, bool[] loaded, IndexEntry[] found, int threads, CancellationToken ct)
    {
        int pixelCount = model.Spec.PixelCount;

        // Each image writes only its own slots, so the result does not depend on the thread count.
        void Load(int j) => loaded[j] = images.TryLoad(first + j, model.Spec, pixels.AsSpan(j * pixelCount, pixelCount), out found[j]);
        try
        {
            Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = ct }, Load);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }
}

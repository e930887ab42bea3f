using System.Runtime.ExceptionServices;

namespace DistClip.Data;

/// <summary>Loads, tokenizes and packs a list of samples into a <see cref="Batch"/>; shared by the training and evaluation loaders.</summary>
internal static class BatchBuilder
{
    public static Batch Build(
        IImageTextDataset dataset,
        ImageSpec spec,
        ITextTokenizer tokenizer,
        int contextLength,
        int[] indices,
        SamplerCursor cursor,
        int decodeThreads,
        CancellationToken cancellationToken)
    {
        int n = indices.Length;
        int pixelCount = spec.PixelCount;
        var images = new float[n * pixelCount];
        var tokens = new long[n * contextLength];
        var lengths = new long[n];
        var labels = new int[n];
        var captions = new string[n];
        var loaded = new bool[n];

        // Each sample writes only its own slot, so the result is identical for any thread count.
        void Load(int j)
        {
            if (dataset.TryLoad(indices[j], spec, images.AsSpan(j * pixelCount, pixelCount), out string caption, out int label))
            {
                lengths[j] = tokenizer.Encode(caption, contextLength, tokens.AsSpan(j * contextLength, contextLength));
                labels[j] = label;
                captions[j] = caption;
                loaded[j] = true;
            }
        }

        if (decodeThreads <= 1 || n <= 1)
        {
            for (int j = 0; j < n; j++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Load(j);
            }
        }
        else
        {
            try
            {
                var parallel = new ParallelOptions { MaxDegreeOfParallelism = decodeThreads, CancellationToken = cancellationToken };
                Parallel.For(0, n, parallel, Load);
            }
            catch (AggregateException e) when (e.InnerExceptions.Count > 0)
            {
                // Surface the dataset's own exception, not the Parallel wrapper.
                ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            }
        }

        if (Array.IndexOf(loaded, false) < 0)
        {
            return new Batch(spec, contextLength, cursor, n, images, tokens, lengths, labels, (int[])indices.Clone(), captions);
        }

        // Some samples were skipped: copy the survivors, in order, into exactly-sized arrays.
        int count = loaded.Count(ok => ok);
        var keptImages = new float[count * pixelCount];
        var keptTokens = new long[count * contextLength];
        var keptLengths = new long[count];
        var keptLabels = new int[count];
        var keptIndices = new int[count];
        var keptCaptions = new string[count];
        for (int j = 0, k = 0; j < n; j++)
        {
            if (!loaded[j])
            {
                continue;
            }

            images.AsSpan(j * pixelCount, pixelCount).CopyTo(keptImages.AsSpan(k * pixelCount));
            tokens.AsSpan(j * contextLength, contextLength).CopyTo(keptTokens.AsSpan(k * contextLength));
            keptLengths[k] = lengths[j];
            keptLabels[k] = labels[j];
            keptIndices[k] = indices[j];
            keptCaptions[k] = captions[j];
            k++;
        }

        return new Batch(spec, contextLength, cursor, count, keptImages, keptTokens, keptLengths, keptLabels, keptIndices, keptCaptions);
    }
}

namespace DistClip.Data;

/// <summary>
/// One rank's share of one global batch, ready to become tensors. Samples that had to be skipped are
/// left out (and counted in the dataset's <see cref="IImageTextDataset.Skips"/>), so
/// <see cref="Count"/> can be below the local batch size, in a badly broken shard even 0.
/// </summary>
public sealed class Batch
{
    internal Batch(ImageSpec spec, int contextLength, SamplerCursor cursor, int count, float[] images, long[] tokens, long[] lengths, int[] labels, int[] indices, string[] captions)
    {
        Spec = spec;
        ContextLength = contextLength;
        Cursor = cursor;
        Count = count;
        Images = images;
        Tokens = tokens;
        Lengths = lengths;
        Labels = labels;
        Indices = indices;
        Captions = captions;
    }

    /// <summary>Samples that loaded.</summary>
    public int Count { get; }

    /// <summary>Count × Channels × Size × Size, CHW per sample.</summary>
    public float[] Images { get; }

    /// <summary>Count × ContextLength: [SOT, bpe…, EOT, 0…] per sample.</summary>
    public long[] Tokens { get; }

    /// <summary>Per sample, the used token count including SOT and EOT; EOT sits at Lengths[i] - 1.</summary>
    public long[] Lengths { get; }

    /// <summary>Per sample, the class label, or -1 when the dataset is unlabelled.</summary>
    public int[] Labels { get; }

    /// <summary>Dataset indices of the loaded samples, in batch order.</summary>
    public int[] Indices { get; }

    public string[] Captions { get; }

    /// <summary>The cursor of this batch (for sequential evaluation: epoch 0, batch number).</summary>
    public SamplerCursor Cursor { get; }

    /// <summary>The preprocessing the images went through (their shape is Count × Channels × Size × Size).</summary>
    public ImageSpec Spec { get; }

    public int ContextLength { get; }
}

namespace DistClip.Data;

/// <summary>Random-access image–text dataset. Fashion-MNIST, WebDataset tar shards, CSV and generated (synthetic) data implement it.</summary>
public interface IImageTextDataset
{
    string Name { get; }

    /// <summary>Samples that survived indexing; valid indices are 0..Count-1.</summary>
    int Count { get; }

    /// <summary>Class names for labelled datasets, indexed by label; null when unlabelled.</summary>
    IReadOnlyList<string>? ClassNames { get; }

    /// <summary>Skips found at open/index time and at load time.</summary>
    SkipCounters Skips { get; }

    /// <summary>
    /// Loads and preprocesses sample <paramref name="index"/> into <paramref name="pixels"/>
    /// (length <see cref="ImageSpec.PixelCount"/>, CHW). Returns false, and records the reason in
    /// <see cref="Skips"/>, when the sample must be skipped. Safe to call from several threads at once.
    /// </summary>
    /// <param name="label">The class label, or -1 when the dataset is unlabelled.</param>
    bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out string caption, out int label);
}

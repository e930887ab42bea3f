using Microsoft.Extensions.Logging;

namespace DistClip.Data;

public enum FashionMnistSplit
{
    Train,
    Test,
}

/// <summary>
/// Fashion-MNIST from Debian's <c>dataset-fashion-mnist</c> package: 28×28 grayscale clothing in 10
/// classes, captioned from <see cref="PromptTemplates.Default"/>. Raw bytes stay in memory
/// (60000 × 784 bytes for the training split), so loading a sample is a normalise, not a decode.
/// </summary>
public sealed class FashionMnistDataset : IImageTextDataset
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>Environment variable that overrides <see cref="DefaultDirectory"/> when no directory is given.</summary>
    public const string DirectoryVariable = "DISTCLIP_FASHION_MNIST_DIR";

    public const string InstallHint = "install it with: apt-get install dataset-fashion-mnist";

    public const int Side = 28;

    private const int ImageBytes = Side * Side;

    private readonly byte[] _images;
    private readonly byte[] _labels;
    private readonly int _captionSeed;

    private FashionMnistDataset(FashionMnistSplit split, byte[] images, byte[] labels, int captionSeed, SkipCounters skips)
    {
        Split = split;
        _images = images;
        _labels = labels;
        _captionSeed = captionSeed;
        Skips = skips;
    }

    /// <summary>The ten class names, indexed by label, as the dataset's authors spell them.</summary>
    public static IReadOnlyList<string> Classes { get; } =
    [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ];

    public FashionMnistSplit Split { get; }

    public string Name => Split == FashionMnistSplit.Train ? "fashion-mnist-train" : "fashion-mnist-test";

    public int Count => _labels.Length;

    public IReadOnlyList<string>? ClassNames => Classes;

    /// <summary>Always empty: every Fashion-MNIST sample loads. Present for the common contract.</summary>
    public SkipCounters Skips { get; }

    /// <summary>
    /// Reads both IDX files of <paramref name="split"/>. <paramref name="directory"/> defaults to
    /// $DISTCLIP_FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist.
    /// <paramref name="captionSeed"/> picks which template each sample's caption uses.
    /// </summary>
    /// <exception cref="DataException">A file is missing (the message says how to install it) or malformed.</exception>
    public static FashionMnistDataset Open(FashionMnistSplit split, string? directory = null, int captionSeed = 0, ILogger? logger = null)
    {
        directory = ResolveDirectory(directory);
        string prefix = split == FashionMnistSplit.Train ? "train" : "t10k";
        string imagesPath = Locate(directory, $"{prefix}-images-idx3-ubyte");
        string labelsPath = Locate(directory, $"{prefix}-labels-idx1-ubyte");

        (int[] imageShape, byte[] images) = IdxFile.Read(imagesPath, rank: 3);
        (int[] labelShape, byte[] labels) = IdxFile.Read(labelsPath, rank: 1);
        if (imageShape[1] != Side || imageShape[2] != Side)
        {
            throw new DataException($"{imagesPath}: images are {imageShape[1]}x{imageShape[2]}, expected {Side}x{Side}.");
        }

        if (imageShape[0] != labelShape[0])
        {
            throw new DataException($"{imagesPath} holds {imageShape[0]} images but {labelsPath} holds {labelShape[0]} labels.");
        }

        int bad = Array.FindIndex(labels, l => l >= Classes.Count);
        if (bad >= 0)
        {
            throw new DataException($"{labelsPath}: label {labels[bad]} at index {bad} is not one of the {Classes.Count} classes.");
        }

        return new FashionMnistDataset(split, images, labels, captionSeed, new SkipCounters(logger));
    }

    /// <summary>The samples of <paramref name="split"/>, read from its label file's header (nothing else is read).</summary>
    /// <exception cref="DataException">The file is missing or not an IDX label file.</exception>
    public static int CountOf(FashionMnistSplit split, string? directory = null) =>
        IdxFile.ReadShape(Locate(ResolveDirectory(directory), $"{(split == FashionMnistSplit.Train ? "train" : "t10k")}-labels-idx1-ubyte"), rank: 1)[0];

    /// <summary>The directory given, else $DISTCLIP_FASHION_MNIST_DIR, else <see cref="DefaultDirectory"/>.</summary>
    public static string ResolveDirectory(string? directory = null) =>
        directory ?? (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } fromEnv ? fromEnv : DefaultDirectory);

    public byte Label(int index)
    {
        CheckIndex(index);
        return _labels[index];
    }

    /// <summary>The 784 raw bytes of sample <paramref name="index"/>, row-major, 0 = background.</summary>
    public ReadOnlySpan<byte> RawImage(int index)
    {
        CheckIndex(index);
        return _images.AsSpan(index * ImageBytes, ImageBytes);
    }

    /// <summary>
    /// The caption of sample <paramref name="index"/>: its lower-cased class name through one template,
    /// chosen by a fixed hash of (captionSeed, index) so every process and run agrees.
    /// </summary>
    public string Caption(int index)
    {
        string className = Classes[Label(index)].ToLowerInvariant();
        IReadOnlyList<string> templates = PromptTemplates.Default;
        int template = (int)(SplitMix64.Hash(_captionSeed, index) % (ulong)templates.Count);
        return PromptTemplates.Apply(templates[template], className);
    }

    public bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out string caption, out int label)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ReadOnlySpan<byte> raw = RawImage(index);
        if (spec.Size == Side)
        {
            // Native size: the resize and crop are identities, so normalise directly.
            spec.Validate();
            int plane = ImageBytes;
            for (int c = 0; c < spec.Channels; c++)
            {
                float mean = spec.Mean[c];
                float std = spec.Std[c];
                Span<float> output = pixels.Slice(c * plane, plane);
                for (int i = 0; i < plane; i++)
                {
                    output[i] = ((raw[i] / 255f) - mean) / std;
                }
            }
        }
        else
        {
            ImageTransform.Apply(raw, Side, Side, 1, spec, pixels);
        }

        caption = Caption(index);
        label = _labels[index];
        return true;
    }

    private static string Locate(string directory, string baseName)
    {
        string gz = Path.Combine(directory, baseName + ".gz");
        if (File.Exists(gz))
        {
            return gz;
        }

        // Some mirrors ship the files already decompressed.
        string plain = Path.Combine(directory, baseName);
        if (File.Exists(plain))
        {
            return plain;
        }

        throw new DataException($"Fashion-MNIST file not found: {gz}. {InstallHint} (or point {DirectoryVariable} at a directory holding it).");
    }

    private void CheckIndex(int index)
    {
        if ((uint)index >= (uint)_labels.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {_labels.Length} samples.");
        }
    }
}

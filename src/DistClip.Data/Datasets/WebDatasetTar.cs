using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace DistClip.Data;

/// <summary>
/// WebDataset-style tar shards: members sharing a key (dirname/basename up to the first '.') form one
/// sample, e.g. <c>000123.jpg</c> + <c>000123.txt</c>. Shards are indexed once at open (headers
/// only); <see cref="TryLoad"/> reads a sample's bytes straight from its shard.
/// </summary>
/// <remarks>
/// At open: a group without a caption counts <see cref="SkipReason.MissingCaption"/>, one without
/// an image <see cref="SkipReason.MissingImage"/>, and a truncated or corrupt header
/// <see cref="SkipReason.TruncatedEntry"/> (indexing of that shard stops there; earlier samples stay).
/// At load: blank captions count <see cref="SkipReason.EmptyCaption"/>, bad images
/// <see cref="SkipReason.UndecodableImage"/> or <see cref="SkipReason.ImageTooLarge"/>.
/// </remarks>
public sealed partial class WebDatasetTar : IImageTextDataset
{
    /// <summary>Image extensions in order of preference when a sample carries several.</summary>
    public static IReadOnlyList<string> ImageExtensions { get; } = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "tga"];

    /// <summary>Caption extensions in order of preference.</summary>
    public static IReadOnlyList<string> CaptionExtensions { get; } = ["txt", "caption"];

    // Captions are short; a huge text member is cut here rather than read whole (the tokenizer truncates anyway).
    private const int MaxCaptionBytes = 64 * 1024;

    private readonly string[] _shards;
    private readonly Sample[] _samples;
    private readonly ImageDecoder _decoder;

    private WebDatasetTar(string pattern, string[] shards, Sample[] samples, SkipCounters skips, ImageDecoder decoder)
    {
        Name = pattern;
        _shards = shards;
        _samples = samples;
        Skips = skips;
        _decoder = decoder;
    }

    public string Name { get; }

    public int Count => _samples.Length;

    public IReadOnlyList<string>? ClassNames => null;

    public SkipCounters Skips { get; }

    /// <summary>The shard files, in pattern order.</summary>
    public IReadOnlyList<string> Shards => _shards;

    /// <summary>Expands <paramref name="pattern"/> (see <see cref="ShardPattern"/>) and indexes every shard.</summary>
    /// <exception cref="DataException">A shard file does not exist, or the pattern is malformed.</exception>
    public static WebDatasetTar Open(string pattern, ILogger? logger = null, ImageDecodeOptions? decodeOptions = null, TimeProvider? time = null)
    {
        IReadOnlyList<string> shards = ShardPattern.Expand(pattern);
        string? missing = shards.FirstOrDefault(s => !File.Exists(s));
        if (missing is not null)
        {
            throw new DataException($"WebDataset shard not found: {missing} (from pattern \"{pattern}\", {shards.Count} shards).");
        }

        var skips = new SkipCounters(logger, time);
        var samples = new List<Sample>();
        for (int shard = 0; shard < shards.Count; shard++)
        {
            List<TarMember> members = TarScanner.Scan(shards[shard], out string? problem);
            if (problem is not null)
            {
                skips.Record(SkipReason.TruncatedEntry, $"{shards[shard]}: {problem}");
            }

            Group(shard, shards[shard], members, samples, skips);
        }

        if (logger is not null)
        {
            LogIndexed(logger, pattern, samples.Count, shards.Count, skips.Total);
        }

        return new WebDatasetTar(pattern, [.. shards], [.. samples], skips, new ImageDecoder(decodeOptions));
    }

    /// <summary>The sample's key within its shard, e.g. "images/000123".</summary>
    public string Key(int index) => At(index).Key;

    public bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out string caption, out int label)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Sample sample = At(index);
        string shard = _shards[sample.Shard];
        label = -1;
        caption = string.Empty;

        // A handle per call keeps this trivially thread-safe and leaks nothing when the dataset is
        // dropped; an open is cheap next to an image decode.
        using SafeFileHandle handle = File.OpenHandle(shard, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        string what = $"{shard}:{sample.Key}";

        int captionBytes = (int)Math.Min(sample.Caption.Size, MaxCaptionBytes);
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Max(captionBytes, Math.Min(sample.Image.Size, _decoder.Options.MaxEncodedBytes)));
        try
        {
            if (!TryRead(handle, sample.Caption.Offset, buffer.AsSpan(0, captionBytes)))
            {
                Skips.Record(SkipReason.TruncatedEntry, what);
                return false;
            }

            string text = Encoding.UTF8.GetString(buffer, 0, captionBytes).Trim();
            if (text.Length == 0)
            {
                Skips.Record(SkipReason.EmptyCaption, what);
                return false;
            }

            if (sample.Image.Size > _decoder.Options.MaxEncodedBytes)
            {
                Skips.Record(SkipReason.ImageTooLarge, $"{what}: {sample.Image.Size} encoded bytes");
                return false;
            }

            int imageBytes = (int)sample.Image.Size;
            if (!TryRead(handle, sample.Image.Offset, buffer.AsSpan(0, imageBytes)))
            {
                Skips.Record(SkipReason.TruncatedEntry, what);
                return false;
            }

            if (!_decoder.TryDecode(buffer.AsMemory(0, imageBytes), spec, pixels, out SkipReason reason, out string detail))
            {
                Skips.Record(reason, $"{what}: {detail}");
                return false;
            }

            caption = text;
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void Group(int shard, string shardPath, List<TarMember> members, List<Sample> samples, SkipCounters skips)
    {
        // Keys in order of first appearance, so sample order follows the shard.
        var groups = new Dictionary<string, Dictionary<string, TarMember>>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (TarMember member in members)
        {
            if (!SplitName(member.Name, out string key, out string extension))
            {
                continue;
            }

            if (!groups.TryGetValue(key, out Dictionary<string, TarMember>? fields))
            {
                fields = new Dictionary<string, TarMember>(StringComparer.Ordinal);
                groups[key] = fields;
                order.Add(key);
            }

            fields.TryAdd(extension, member);
        }

        foreach (string key in order)
        {
            Dictionary<string, TarMember> fields = groups[key];
            TarMember? image = Pick(fields, ImageExtensions);
            TarMember? caption = Pick(fields, CaptionExtensions);
            if (image is null)
            {
                skips.Record(SkipReason.MissingImage, $"{shardPath}:{key}");
            }
            else if (caption is null)
            {
                skips.Record(SkipReason.MissingCaption, $"{shardPath}:{key}");
            }
            else
            {
                samples.Add(new Sample(shard, key, new Extent(image.Value.DataOffset, image.Value.Size), new Extent(caption.Value.DataOffset, caption.Value.Size)));
            }
        }
    }

    /// <summary>webdataset's rule: key = dirname/basename before its first '.', extension = the rest, lower-cased.</summary>
    internal static bool SplitName(string name, out string key, out string extension)
    {
        int slash = name.LastIndexOf('/');
        int dot = name.IndexOf('.', slash + 1);
        if (dot <= slash + 1 || dot == name.Length - 1)
        {
            // No extension, or a hidden file such as "._x.jpg" (macOS resource forks): not a sample field.
            key = extension = string.Empty;
            return false;
        }

        key = name[..dot];
        extension = name[(dot + 1)..].ToLowerInvariant();
        return true;
    }

    private static TarMember? Pick(Dictionary<string, TarMember> fields, IReadOnlyList<string> preference)
    {
        foreach (string extension in preference)
        {
            if (fields.TryGetValue(extension, out TarMember member))
            {
                return member;
            }
        }

        return null;
    }

    private static bool TryRead(SafeFileHandle handle, long offset, Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int read = RandomAccess.Read(handle, buffer, offset);
            if (read == 0)
            {
                // The shard shrank since it was indexed.
                return false;
            }

            buffer = buffer[read..];
            offset += read;
        }

        return true;
    }

    private Sample At(int index)
    {
        if ((uint)index >= (uint)_samples.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {_samples.Length} samples.");
        }

        return _samples[index];
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information,
        Message = "Indexed {Pattern}: {Samples} samples in {Shards} shards, {Skipped} skipped while indexing")]
    private static partial void LogIndexed(ILogger logger, string pattern, int samples, int shards, long skipped);

    private readonly record struct Extent(long Offset, long Size);

    private readonly record struct Sample(int Shard, string Key, Extent Image, Extent Caption);
}

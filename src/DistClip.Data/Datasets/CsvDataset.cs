using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace DistClip.Data;

/// <summary>How to read an image–caption CSV.</summary>
public sealed record CsvOptions
{
    /// <summary>Header name of the image path column; with <see cref="HasHeader"/> false, its zero-based index ("0").</summary>
    public string ImageColumn { get; init; } = "filepath";

    /// <summary>Header name of the caption column; with <see cref="HasHeader"/> false, its zero-based index ("1").</summary>
    public string CaptionColumn { get; init; } = "title";

    public char Separator { get; init; } = ',';

    public bool HasHeader { get; init; } = true;

    /// <summary>Directory that relative image paths resolve against; null means the CSV's own directory.</summary>
    public string? ImageRoot { get; init; }

    public ImageDecodeOptions? Decode { get; init; }
}

/// <summary>
/// A CSV of (image path, caption) rows, the format open_clip's <c>--csv-img-key filepath --csv-caption-key title</c> reads.
/// </summary>
/// <remarks>
/// At open: rows with a blank caption count <see cref="SkipReason.EmptyCaption"/>, a blank image
/// path <see cref="SkipReason.MissingImage"/>, too few fields or an unterminated quote at the end
/// <see cref="SkipReason.TruncatedEntry"/>. Image files are NOT checked at open (a stat per row is
/// slow on network storage for millions of rows): a missing file counts
/// <see cref="SkipReason.MissingImage"/> when the sample is loaded.
/// </remarks>
public sealed partial class CsvDataset : IImageTextDataset
{
    private readonly string[] _paths;
    private readonly string[] _captions;
    private readonly ImageDecoder _decoder;

    private CsvDataset(string name, string[] paths, string[] captions, SkipCounters skips, ImageDecoder decoder)
    {
        Name = name;
        _paths = paths;
        _captions = captions;
        Skips = skips;
        _decoder = decoder;
    }

    public string Name { get; }

    public int Count => _paths.Length;

    public IReadOnlyList<string>? ClassNames => null;

    public SkipCounters Skips { get; }

    /// <exception cref="DataException">The file is missing, or a named column is not in the header (the message lists those present).</exception>
    public static CsvDataset Open(string csvPath, CsvOptions? options = null, ILogger? logger = null, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(csvPath);
        options ??= new CsvOptions();
        if (!File.Exists(csvPath))
        {
            throw new DataException($"CSV file not found: {Path.GetFullPath(csvPath)}.");
        }

        string root = options.ImageRoot ?? Path.GetDirectoryName(Path.GetFullPath(csvPath))!;
        var skips = new SkipCounters(logger, time);
        var paths = new List<string>();
        var captions = new List<string>();

        using var text = new StreamReader(csvPath, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        var reader = new CsvReader(text, options.Separator);
        var fields = new List<string>();
        int imageColumn, captionColumn;
        if (options.HasHeader)
        {
            if (!reader.TryRead(fields, out _))
            {
                throw new DataException($"{csvPath} is empty: expected a header naming columns \"{options.ImageColumn}\" and \"{options.CaptionColumn}\".");
            }

            imageColumn = HeaderIndex(fields, options.ImageColumn, csvPath);
            captionColumn = HeaderIndex(fields, options.CaptionColumn, csvPath);
        }
        else
        {
            imageColumn = PositionalIndex(options.ImageColumn, nameof(CsvOptions.ImageColumn));
            captionColumn = PositionalIndex(options.CaptionColumn, nameof(CsvOptions.CaptionColumn));
        }

        int needed = Math.Max(imageColumn, captionColumn) + 1;
        while (reader.TryRead(fields, out bool unterminated))
        {
            string where = $"{csvPath}:{reader.RecordLine}";
            if (unterminated || fields.Count < needed)
            {
                skips.Record(SkipReason.TruncatedEntry, where);
                continue;
            }

            string caption = fields[captionColumn].Trim();
            string image = fields[imageColumn].Trim();
            if (caption.Length == 0)
            {
                skips.Record(SkipReason.EmptyCaption, where);
            }
            else if (image.Length == 0)
            {
                skips.Record(SkipReason.MissingImage, where);
            }
            else
            {
                paths.Add(Path.IsPathRooted(image) ? image : Path.GetFullPath(Path.Combine(root, image)));
                captions.Add(caption);
            }
        }

        if (logger is not null)
        {
            LogIndexed(logger, csvPath, paths.Count, skips.Total);
        }

        return new CsvDataset(csvPath, [.. paths], [.. captions], skips, new ImageDecoder(options.Decode));
    }

    /// <summary>The resolved image path of sample <paramref name="index"/>.</summary>
    public string ImagePath(int index) => _paths[Check(index)];

    /// <summary>The caption of sample <paramref name="index"/> as read (trimmed).</summary>
    public string Caption(int index) => _captions[Check(index)];

    public bool TryLoad(int index, ImageSpec spec, Span<float> pixels, out string caption, out int label)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string path = _paths[Check(index)];
        caption = string.Empty;
        label = -1;

        // A row may name anything: a directory, a FIFO (whose open blocks for good), a device. Only
        // regular files are opened.
        string? notAFile = FileKind.NotARegularFile(path);
        if (notAFile == "missing")
        {
            Skips.Record(SkipReason.MissingImage, path);
            return false;
        }

        if (notAFile is not null)
        {
            Skips.Record(SkipReason.NotARegularFile, $"{path}: {notAFile}");
            return false;
        }

        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            Skips.Record(SkipReason.MissingImage, path);
            return false;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            Skips.Record(SkipReason.UnreadableImage, $"{path}: {e.Message}");
            return false;
        }

        using (handle)
        {
            long length = RandomAccess.GetLength(handle);
            if (length > _decoder.Options.MaxEncodedBytes)
            {
                Skips.Record(SkipReason.ImageTooLarge, $"{path}: {length} encoded bytes");
                return false;
            }

            byte[] buffer = ArrayPool<byte>.Shared.Rent((int)length);
            try
            {
                int read = 0;
                try
                {
                    while (read < length)
                    {
                        int n = RandomAccess.Read(handle, buffer.AsSpan(read, (int)length - read), read);
                        if (n == 0)
                        {
                            break;
                        }

                        read += n;
                    }
                }
                catch (IOException e)
                {
                    Skips.Record(SkipReason.UnreadableImage, $"{path}: {e.Message}");
                    return false;
                }

                if (!_decoder.TryDecode(buffer.AsMemory(0, read), spec, pixels, out SkipReason reason, out string detail))
                {
                    Skips.Record(reason, $"{path}: {detail}");
                    return false;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        caption = _captions[index];
        return true;
    }

    private static int HeaderIndex(List<string> header, string column, string csvPath)
    {
        int index = header.FindIndex(h => string.Equals(h.Trim(), column, StringComparison.Ordinal));
        if (index < 0)
        {
            throw new DataException(
                $"{csvPath} has no column \"{column}\"; columns present: {string.Join(", ", header.Select(h => $"\"{h}\""))}.");
        }

        return index;
    }

    private static int PositionalIndex(string column, string option)
    {
        if (!int.TryParse(column, NumberStyles.None, CultureInfo.InvariantCulture, out int index))
        {
            throw new DataException($"{option} \"{column}\" must be a zero-based column index when the CSV has no header.");
        }

        return index;
    }

    private int Check(int index)
    {
        if ((uint)index >= (uint)_paths.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {_paths.Length} samples.");
        }

        return index;
    }

    [LoggerMessage(EventId = 1201, Level = LogLevel.Information,
        Message = "Indexed {Path}: {Samples} samples, {Skipped} rows skipped")]
    private static partial void LogIndexed(ILogger logger, string path, int samples, long skipped);
}

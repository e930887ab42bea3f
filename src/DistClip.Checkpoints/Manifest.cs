using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace DistClip.Checkpoints;

/// <summary>One MANIFEST line: the file's sha256 (lower-case hex), its size in bytes and its name.</summary>
internal sealed record ManifestEntry(string Name, long Size, string Sha256);

/// <summary>
/// The MANIFEST format: one line per file, <c>sha256  size  name</c> (two spaces, like sha256sum),
/// sorted by name, LF endings. Names are plain (<see cref="CheckpointLayout.IsPlainName"/>) so they
/// never contain a space.
/// </summary>
internal static class Manifest
{
    public static byte[] Format(IEnumerable<ManifestEntry> entries)
    {
        var text = new StringBuilder();
        foreach (ManifestEntry e in entries.OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            text.Append(CultureInfo.InvariantCulture, $"{e.Sha256}  {e.Size}  {e.Name}\n");
        }
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>The most a MANIFEST may hold: thousands of lines, far more than a checkpoint has files.</summary>
    public const int MaxBytes = 1 << 20;

    /// <exception cref="CorruptCheckpointException">MANIFEST is missing, not a regular file, too large or malformed.</exception>
    public static IReadOnlyList<ManifestEntry> Read(string directory)
    {
        byte[] bytes = ReadSmallFile(directory, CheckpointFiles.Manifest, MaxBytes);
        string[] lines = Encoding.UTF8.GetString(bytes).Split('\n');
        var entries = new List<ManifestEntry>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0 && i == lines.Length - 1)
            {
                break; // the final newline
            }
            entries.Add(ParseLine(directory, lines[i], i + 1));
        }
        if (entries.Select(e => e.Name).Distinct(StringComparer.Ordinal).Count() != entries.Count)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.Manifest, "lists a file twice");
        }
        return entries;
    }

    /// <summary>Streams the file through sha256; cancellable between 1 MiB chunks (a large model takes seconds).</summary>
    public static string Sha256Of(Stream file, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[1 << 20];
        int read;
        while ((read = file.Read(buffer)) > 0)
        {
            ct.ThrowIfCancellationRequested();
            hash.AppendData(buffer.AsSpan(0, read));
        }
        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    public static string Sha256Of(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>A regular file of at most <paramref name="maxBytes"/>, read whole through one descriptor.</summary>
    /// <exception cref="CorruptCheckpointException">It is missing, not a regular file, or larger.</exception>
    public static byte[] ReadSmallFile(string directory, string name, int maxBytes)
    {
        using FileStream file = CheckpointEntries.OpenRegular(directory, name, bufferSize: 1);
        long length = file.Length;
        if (length > maxBytes)
        {
            throw new CorruptCheckpointException(directory, name, $"is {length} bytes; at most {maxBytes} are read");
        }
        var bytes = new byte[length];
        file.ReadExactly(bytes);
        return bytes;
    }

    private static ManifestEntry ParseLine(string directory, string line, int number)
    {
        string[] parts = line.Split("  ");
        if (parts.Length != 3
            || parts[0].Length != 64 || !parts[0].All(char.IsAsciiHexDigitLower)
            || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long size)
            || !CheckpointLayout.IsPlainName(parts[2])
            || parts[2] == CheckpointFiles.Manifest)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.Manifest, $"line {number} is malformed: '{line}'");
        }
        return new ManifestEntry(parts[2], size, parts[0]);
    }
}

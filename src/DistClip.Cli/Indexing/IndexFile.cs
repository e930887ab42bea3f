using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using DistClip.Cli.Inference;

namespace DistClip.Cli.Indexing;

/// <summary>One indexed image: where it came from, and its caption or class when the source has one.</summary>
internal sealed record IndexEntry(string Id, string? Caption = null, string? Label = null);

/// <summary>What an index records about itself; <see cref="Model"/> decides which model may search it.</summary>
internal sealed record IndexHeader(
    int FormatVersion,
    string CreatedUtc,
    ModelIdentity Model,
    string Images,
    int Count,
    int Dim,
    long Skipped,
    IReadOnlyDictionary<string, long> SkippedByReason);

/// <summary>An index file that cannot be used as it is on disk.</summary>
internal sealed class IndexFormatException(string path, string problem)
    : Exception($"{path}: {problem}; rebuild it with 'distclip index'")
{
    public string IndexPath { get; } = path;
}

/// <summary>
/// The index file format, version 1. All integers little-endian:
/// <code>
/// "DCLIPIDX"                  8 bytes, the signature
/// u32 format version          1
/// u32 n, n bytes              header (<see cref="IndexHeader"/>, UTF-8 JSON, snake_case)
/// u32 m, m bytes              entries (JSON array of <see cref="IndexEntry"/>, in row order)
/// f32[count × dim]            unit-length image embeddings, one row per entry
/// 32 bytes                    SHA-256 of every byte before it
/// </code>
/// Written to a temporary name and renamed, so a reader never sees half an index; the checksum
/// catches later damage. Any inconsistency is refused with <see cref="IndexFormatException"/>.
/// </summary>
internal static class IndexFile
{
    public const int FormatVersion = 1;

    private static readonly byte[] Signature = "DCLIPIDX"u8.ToArray();
    private const int ChecksumBytes = 32;

    // JSON sections beyond this size are not something this program wrote.
    private const int MaxSectionBytes = 1 << 30;

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    public static void Write(string path, IndexHeader header, IReadOnlyList<IndexEntry> entries, ReadOnlySpan<float> embeddings, CancellationToken ct)
    {
        if (header.Count != entries.Count || (long)header.Count * header.Dim != embeddings.Length)
        {
            throw new ArgumentException($"header says {header.Count} × {header.Dim}, got {entries.Count} entries and {embeddings.Length} floats");
        }

        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                void Put(ReadOnlySpan<byte> bytes)
                {
                    file.Write(bytes);
                    hash.AppendData(bytes);
                }

                Put(Signature);
                Put(UInt32(FormatVersion));
                foreach (byte[] section in new[] { JsonSerializer.SerializeToUtf8Bytes(header, Json), JsonSerializer.SerializeToUtf8Bytes(entries, Json) })
                {
                    Put(UInt32(section.Length));
                    Put(section);
                }

                const int chunk = 1 << 18;
                for (int first = 0; first < embeddings.Length; first += chunk)
                {
                    ct.ThrowIfCancellationRequested();
                    var slice = embeddings.Slice(first, Math.Min(chunk, embeddings.Length - first));
                    Put(BitConverter.IsLittleEndian ? MemoryMarshal.AsBytes(slice) : LittleEndian(slice));
                }

                file.Write(hash.GetHashAndReset());
                file.Flush(flushToDisk: true);
            }

            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>Reads and verifies an index: signature, version, section bounds, shape and checksum.</summary>
    /// <exception cref="IndexFormatException">Anything at all is wrong; the message says what.</exception>
    public static (IndexHeader Header, IReadOnlyList<IndexEntry> Entries, float[] Embeddings) Read(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new IndexFormatException(full, "no such index file");
        }

        byte[] bytes = File.ReadAllBytes(full);
        int minimum = Signature.Length + 4 + 4 + 4 + ChecksumBytes;
        if (bytes.Length < Signature.Length || !bytes.AsSpan(0, Signature.Length).SequenceEqual(Signature))
        {
            throw new IndexFormatException(full, "not a DistClip index (the file does not start with the DCLIPIDX signature)");
        }

        if (bytes.Length < minimum)
        {
            throw new IndexFormatException(full, $"truncated ({bytes.Length} bytes)");
        }

        int version = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(Signature.Length));
        if (version != FormatVersion)
        {
            throw new IndexFormatException(full, $"index format version {version}; this distclip reads version {FormatVersion}");
        }

        // The checksum first: every later check would only describe the same damage less clearly.
        int body = bytes.Length - ChecksumBytes;
        if (!SHA256.HashData(bytes.AsSpan(0, body)).AsSpan().SequenceEqual(bytes.AsSpan(body)))
        {
            throw new IndexFormatException(full, "corrupt: its SHA-256 checksum does not match (the file was changed or damaged after it was written)");
        }

        int offset = Signature.Length + 4;
        var header = Section<IndexHeader>(full, bytes, ref offset, body, "header");
        var entries = Section<List<IndexEntry>>(full, bytes, ref offset, body, "entries");
        long floats = (long)header.Count * header.Dim;
        if (header.Count != entries.Count || header.Dim <= 0 || floats * sizeof(float) != body - offset)
        {
            throw new IndexFormatException(full,
                $"inconsistent: header says {header.Count} images × {header.Dim} dimensions, the file holds {entries.Count} entries and {body - offset} bytes of embeddings");
        }

        var embeddings = new float[floats];
        var source = bytes.AsSpan(offset, (int)(floats * sizeof(float)));
        if (BitConverter.IsLittleEndian)
        {
            source.CopyTo(MemoryMarshal.AsBytes(embeddings.AsSpan()));
        }
        else
        {
            for (int i = 0; i < embeddings.Length; i++)
            {
                embeddings[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(i * 4)..]);
            }
        }

        return (header, entries, embeddings);
    }

    private static T Section<T>(string path, byte[] bytes, ref int offset, int end, string what)
    {
        if (offset + 4 > end)
        {
            throw new IndexFormatException(path, $"truncated before its {what}");
        }

        int length = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset)), int.MaxValue);
        offset += 4;
        if (length > MaxSectionBytes || length > end - offset)
        {
            throw new IndexFormatException(path, $"its {what} claims {length} bytes, more than the file holds");
        }

        try
        {
            var value = JsonSerializer.Deserialize<T>(bytes.AsSpan(offset, length), Json);
            offset += length;
            return value ?? throw new JsonException($"empty {what}");
        }
        catch (JsonException e)
        {
            throw new IndexFormatException(path, $"its {what} is not valid ({e.Message})");
        }
    }

    private static byte[] UInt32(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, checked((uint)value));
        return bytes;
    }

    private static byte[] LittleEndian(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }
}

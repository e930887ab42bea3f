using System.Buffers.Binary;
using System.Text.Json;

namespace DistClip.Model.Import;

/// <summary>
/// Checks a safetensors file's header against the file before anything is allocated for it: every
/// entry's dtype is known, its element count times the dtype's size is exactly its byte range, the
/// ranges lie inside the data section and none overlaps another. A file whose 128 entries all point
/// at the same 64 MiB would otherwise make the loader allocate 128 × 64 MiB.
/// </summary>
internal static class SafetensorsHeader
{
    /// <summary>The format's own bound on the JSON header (100 MB).</summary>
    private const long MaxHeaderBytes = 100_000_000;

    /// <summary>Entries one file may hold.</summary>
    private const int MaxEntries = 100_000;

    private static readonly Dictionary<string, int> DtypeBytes = new(StringComparer.Ordinal)
    {
        ["F64"] = 8,
        ["F32"] = 4,
        ["F16"] = 2,
        ["BF16"] = 2,
        ["F8_E4M3"] = 1,
        ["F8_E5M2"] = 1,
        ["I64"] = 8,
        ["I32"] = 4,
        ["I16"] = 2,
        ["I8"] = 1,
        ["U64"] = 8,
        ["U32"] = 4,
        ["U16"] = 2,
        ["U8"] = 1,
        ["BOOL"] = 1,
    };

    /// <summary>Leaves <paramref name="stream"/> at position 0.</summary>
    /// <exception cref="InvalidDataException">The header is malformed or disagrees with the file, naming the entry.</exception>
    public static void Check(Stream stream)
    {
        var prefix = new byte[8];
        stream.Position = 0;
        stream.ReadExactly(prefix);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > MaxHeaderBytes || headerLength > (ulong)(stream.Length - 8))
        {
            throw new InvalidDataException($"a header of {headerLength} bytes in a file of {stream.Length}");
        }

        var header = new byte[headerLength];
        stream.ReadExactly(header);
        stream.Position = 0;
        long dataBytes = stream.Length - 8 - (long)headerLength;

        using var document = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("the header is not a JSON object");
        }

        var ranges = new List<(long Begin, long End, string Name)>();
        foreach (var entry in document.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__")
            {
                continue;
            }

            if (ranges.Count == MaxEntries)
            {
                throw new InvalidDataException($"more than {MaxEntries} tensors");
            }

            ranges.Add(RangeOf(entry, dataBytes));
        }

        ranges.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        for (int i = 1; i < ranges.Count; i++)
        {
            if (ranges[i].Begin < ranges[i - 1].End)
            {
                throw new InvalidDataException($"tensor {ranges[i].Name} overlaps {ranges[i - 1].Name} (bytes {ranges[i].Begin} and {ranges[i - 1].Begin}–{ranges[i - 1].End})");
            }
        }
    }

    private static (long Begin, long End, string Name) RangeOf(JsonProperty entry, long dataBytes)
    {
        string name = entry.Name;
        var value = entry.Value;
        if (value.ValueKind != JsonValueKind.Object
            || !value.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String
            || !value.TryGetProperty("shape", out var shape) || shape.ValueKind != JsonValueKind.Array
            || !value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
        {
            throw new InvalidDataException($"tensor {name}: an entry without dtype, shape and two data_offsets");
        }

        if (!DtypeBytes.TryGetValue(dtype.GetString()!, out int size))
        {
            throw new InvalidDataException($"tensor {name}: unknown dtype {dtype.GetString()}");
        }

        long elements = 1;
        foreach (var dimension in shape.EnumerateArray())
        {
            if (!dimension.TryGetInt64(out long d) || d < 0)
            {
                throw new InvalidDataException($"tensor {name}: a shape dimension of {dimension.GetRawText()}");
            }

            // Checked: a shape whose element count overflows is as hostile as one that lies.
            elements = d == 0 ? 0 : elements <= long.MaxValue / d ? elements * d : throw new InvalidDataException($"tensor {name}: its shape overflows");
        }

        if (!offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end) || begin < 0 || end < begin || end > dataBytes)
        {
            throw new InvalidDataException($"tensor {name}: data_offsets [{offsets[0].GetRawText()}, {offsets[1].GetRawText()}] outside the {dataBytes} bytes of data");
        }

        if (elements > (end - begin) / size || elements * size != end - begin)
        {
            throw new InvalidDataException($"tensor {name}: {elements} {dtype.GetString()} elements do not fill its {end - begin} bytes");
        }

        return (begin, end, name);
    }
}

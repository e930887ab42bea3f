using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace DistClip.Checkpoints;

/// <summary>
/// The run config as a checkpoint sees it: a canonical form and its hash (stored as
/// <c>config_hash</c>), and a field-by-field comparison for the resume check.
/// </summary>
public static class CheckpointConfig
{
    private static readonly JsonWriterOptions CanonicalWriter = new()
    {
        Indented = false,
        // Non-ASCII stays readable; any fixed escaping would do, since the hash only has to be stable.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// Canonical JSON: object keys sorted ordinally (UTF-16 code units, as RFC 8785 does), no
    /// whitespace, integers as written, other numbers in shortest round-trip form (so <c>1.0</c> and
    /// <c>1</c> are the same value). Close to RFC 8785 but not claimed identical (exponent spelling).
    /// </summary>
    public static string Canonicalize(JsonElement value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, CanonicalWriter))
        {
            WriteCanonical(writer, value);
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Lower-case hex sha256 of the UTF-8 canonical JSON.</summary>
    public static string Hash(JsonElement config) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonicalize(config))));

    /// <summary>
    /// Every leaf that differs, as a dotted path with both values. Objects are compared key by key,
    /// arrays of equal length element by element; an array whose length changed is one difference.
    /// </summary>
    public static IReadOnlyList<ConfigDifference> Compare(JsonElement stored, JsonElement current)
    {
        var differences = new List<ConfigDifference>();
        Walk("", stored, current, differences);
        return differences;
    }

    /// <summary>
    /// Throws <see cref="CheckpointMismatchException"/> listing every difference not covered by
    /// <paramref name="allowedToChange"/>. An allowed path covers itself and everything beneath it
    /// (<c>schedule</c> allows <c>schedule.steps</c>).
    /// </summary>
    public static void EnsureCompatible(JsonElement stored, JsonElement current, IReadOnlySet<string>? allowedToChange = null)
    {
        var refused = Compare(stored, current)
            .Where(d => allowedToChange is null || !allowedToChange.Any(a => Covers(a, d.Path)))
            .ToList();
        if (refused.Count > 0)
        {
            throw new CheckpointMismatchException(refused);
        }
    }

    private static bool Covers(string allowed, string path) =>
        path == allowed ||
        (path.StartsWith(allowed, StringComparison.Ordinal) && path.Length > allowed.Length && path[allowed.Length] is '.' or '[');

    private static void Walk(string path, JsonElement? stored, JsonElement? current, List<ConfigDifference> differences)
    {
        if (stored is not JsonElement a || current is not JsonElement b)
        {
            if (stored is not null || current is not null)
            {
                differences.Add(new ConfigDifference(Display(path), Show(stored), Show(current)));
            }
            return;
        }
        if (a.ValueKind == JsonValueKind.Object && b.ValueKind == JsonValueKind.Object)
        {
            var names = a.EnumerateObject().Select(p => p.Name)
                .Union(b.EnumerateObject().Select(p => p.Name), StringComparer.Ordinal)
                .Order(StringComparer.Ordinal);
            foreach (string name in names)
            {
                JsonElement? left = a.TryGetProperty(name, out JsonElement l) ? l : null;
                JsonElement? right = b.TryGetProperty(name, out JsonElement r) ? r : null;
                Walk(path.Length == 0 ? name : path + "." + name, left, right, differences);
            }
            return;
        }
        if (a.ValueKind == JsonValueKind.Array && b.ValueKind == JsonValueKind.Array && a.GetArrayLength() == b.GetArrayLength())
        {
            for (int i = 0; i < a.GetArrayLength(); i++)
            {
                Walk($"{path}[{i}]", a[i], b[i], differences);
            }
            return;
        }
        string was = Canonicalize(a);
        string now = Canonicalize(b);
        if (was != now)
        {
            differences.Add(new ConfigDifference(Display(path), was, now));
        }
    }

    private static string Display(string path) => path.Length == 0 ? "(root)" : path;

    private static string? Show(JsonElement? value) => value is JsonElement v ? Canonicalize(v) : null;

    private static void WriteCanonical(Utf8JsonWriter writer, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (JsonProperty property in value.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(property.Name);
                    WriteCanonical(writer, property.Value);
                }
                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (JsonElement item in value.EnumerateArray())
                {
                    WriteCanonical(writer, item);
                }
                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(value.GetString());
                break;
            case JsonValueKind.Number:
                if (value.TryGetInt64(out long integer))
                {
                    writer.WriteNumberValue(integer);
                }
                else if (value.TryGetDouble(out double real) && double.IsFinite(real))
                {
                    writer.WriteNumberValue(real);
                }
                else
                {
                    // Beyond double's range: keep the text rather than lose it.
                    writer.WriteRawValue(value.GetRawText());
                }
                break;
            default:
                // true, false, null
                value.WriteTo(writer);
                break;
        }
    }
}

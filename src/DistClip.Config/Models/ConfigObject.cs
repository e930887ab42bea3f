using System.Globalization;
using System.Text.Json;

namespace DistClip.Config;

/// <summary>
/// Reads one JSON object of a config, key by key. Every key asked for (present or not) becomes a
/// known key; <see cref="RefuseUnknownKeys"/> then rejects the rest by name, so a typo such as
/// <c>patch_sise</c> fails loudly instead of silently falling back to a default.
/// </summary>
internal sealed class ConfigObject
{
    private readonly Dictionary<string, JsonElement> values = new(StringComparer.Ordinal);
    private readonly List<string> known = [];
    private readonly string path;

    private ConfigObject(JsonElement element, string path)
    {
        this.path = path;
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new ConfigException(path.Length == 0 ? "(root)" : path, $"expected a JSON object, got {element.ValueKind}");
        }

        foreach (var property in element.EnumerateObject())
        {
            if (!values.TryAdd(property.Name, property.Value))
            {
                throw new ConfigException(FieldPath(property.Name), "duplicate key");
            }
        }
    }

    public static ConfigObject Root(JsonElement element) => new(element, "");

    public string FieldPath(string key) => path.Length == 0 ? key : $"{path}.{key}";

    public ConfigObject RequiredObject(string key) => new(Required(key), FieldPath(key));

    public string RequiredString(string key) => AsString(key, Required(key));

    public string OptionalString(string key, string fallback) =>
        Optional(key) is { } value ? AsString(key, value) : fallback;

    public int RequiredInt(string key) => AsInt(key, Required(key));

    public int OptionalInt(string key, int fallback) =>
        Optional(key) is { } value ? AsInt(key, value) : fallback;

    public double OptionalDouble(string key, double fallback)
    {
        if (Optional(key) is not { } value)
        {
            return fallback;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number))
        {
            throw new ConfigException(FieldPath(key), $"expected a number, got {Show(value)}");
        }

        return number;
    }

    public int[] RequiredIntArray(string key)
    {
        var value = Required(key);
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new ConfigException(FieldPath(key), $"expected an array of integers, got {Show(value)}");
        }

        return [.. value.EnumerateArray().Select((item, i) => AsInt($"{key}[{i}]", item))];
    }

    /// <summary>Throws for the first key present in the JSON that no reader asked for.</summary>
    public void RefuseUnknownKeys(string? context = null)
    {
        foreach (var key in values.Keys)
        {
            if (!known.Contains(key))
            {
                var where = context is null ? "" : $" {context}";
                throw new ConfigException(
                    FieldPath(key),
                    $"unknown key{where} (known keys: {string.Join(", ", known)})");
            }
        }
    }

    private JsonElement Required(string key) =>
        Optional(key) ?? throw new ConfigException(FieldPath(key), "required key is missing");

    private JsonElement? Optional(string key)
    {
        if (!known.Contains(key))
        {
            known.Add(key);
        }

        return values.TryGetValue(key, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;
    }

    private string AsString(string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new ConfigException(FieldPath(key), $"expected a string, got {Show(value)}");

    private int AsInt(string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number)
            ? number
            : throw new ConfigException(FieldPath(key), $"expected an integer, got {Show(value)}");

    private static string Show(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"\"{value.GetString()}\"",
        JsonValueKind.Number => value.GetRawText(),
        _ => value.ValueKind.ToString().ToLower(CultureInfo.InvariantCulture),
    };
}

using System.Reflection;
using System.Text.Json;

namespace DistClip.Config.Settings;

/// <summary>
/// The settings of a configuration record <typeparamref name="T"/>, read once from its
/// <see cref="SettingAttribute"/>-marked properties (and those of its <see cref="SettingGroupAttribute"/>
/// groups). The command line, <c>--help</c>, JSON config files, the Helm schema and the typed
/// settings workers receive all go through this table: a setting is defined once, on its property.
/// </summary>
public static class SettingTable<T>
    where T : class, new()
{
    /// <summary>Every setting of <typeparamref name="T"/>, in declaration order (groups where they are declared).</summary>
    public static readonly IReadOnlyList<Setting> Settings = Read();

    private static readonly Dictionary<string, Setting> ByName = Settings.ToDictionary(s => s.Name, StringComparer.Ordinal);
    private static readonly Dictionary<string, Setting> ByJsonName = Settings.ToDictionary(s => s.JsonName, StringComparer.Ordinal);

    /// <summary>The setting of a command-line name (<c>global-batch</c>), or null.</summary>
    public static Setting? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>The setting of a JSON name (<c>global_batch</c>), or null.</summary>
    public static Setting? FindJson(string jsonName) => ByJsonName.GetValueOrDefault(jsonName);

    /// <summary>Sets one setting from its text (command line or JSON), refusing a bad value by name.</summary>
    public static T Apply(T config, Setting setting, string text) => setting.With(config, setting.Parse(text));

    /// <summary>
    /// Applies a JSON config file: an object of snake_case settings, strings or numbers. Unknown
    /// keys are refused by name; the file is bounded (1 MiB) before it is parsed.
    /// </summary>
    public static T ApplyJson(T config, string path)
    {
        const long MaxBytes = 1 << 20;
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            throw new ConfigException("config", $"{path} does not exist");
        }

        if (file.Length > MaxBytes)
        {
            throw new ConfigException("config", $"{path} is {file.Length:N0} bytes; a config file is at most {MaxBytes:N0}");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new ConfigException("config", $"{path} is not valid JSON: {e.Message}");
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ConfigException("config", $"{path} must hold a JSON object");
            }

            foreach (var property in doc.RootElement.EnumerateObject())
            {
                var setting = FindJson(property.Name)
                    ?? throw new ConfigException(property.Name, $"unknown setting in {path}; known: {string.Join(", ", Settings.Select(s => s.JsonName))}");
                string value = property.Value.ValueKind switch
                {
                    JsonValueKind.String => property.Value.GetString()!,
                    JsonValueKind.Number => property.Value.GetRawText(),
                    _ => throw new ConfigException(property.Name, $"expected a string or a number in {path}"),
                };
                config = Apply(config, setting, value);
            }
        }

        return config;
    }

    /// <summary>Refuses the first setting outside its bounds, choices or pattern (cross-setting rules live with the record).</summary>
    public static void CheckEach(T config)
    {
        foreach (var setting in Settings)
        {
            setting.Check(setting.Get(config));
        }
    }

    /// <summary>Every setting with its value in <paramref name="config"/>.</summary>
    public static IEnumerable<(Setting Setting, object? Value)> Values(T config) =>
        Settings.Select(s => (s, s.Get(config)));

    /// <summary>Help lines: <c>--name  doc (default X)</c>.</summary>
    public static IEnumerable<string> HelpLines(int width = 20) =>
        Settings.Select(s => $"  --{s.Name.PadRight(width)} {s.Help}");

    private static List<Setting> Read()
    {
        var settings = new List<Setting>();
        Collect(typeof(T), [], new T(), settings);
        var duplicate = settings.GroupBy(s => s.Name).FirstOrDefault(g => g.Count() > 1);
        return duplicate is null ? settings
            : throw new InvalidOperationException($"two settings are named {duplicate.Key}: {string.Join(", ", duplicate.Select(s => s.Path))}");
    }

    private static void Collect(Type type, PropertyInfo[] path, object defaults, List<Setting> into)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(p => p.MetadataToken))
        {
            PropertyInfo[] here = [.. path, property];
            if (property.GetCustomAttribute<SettingAttribute>() is { } attribute)
            {
                into.Add(new Setting(here, attribute, property.GetValue(defaults)));
            }
            else if (property.GetCustomAttribute<SettingGroupAttribute>() is not null)
            {
                Collect(property.PropertyType, here, property.GetValue(defaults)!, into);
            }
        }
    }
}

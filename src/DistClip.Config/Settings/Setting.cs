using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;

namespace DistClip.Config.Settings;

/// <summary>The kind of value a setting holds: what it parses, how it travels, how the schema types it.</summary>
public enum SettingType
{
    Integer,
    Real,
    Text,
    Choice,
}

/// <summary>
/// One setting, read from a <see cref="SettingAttribute"/>-marked property: its names, doc, default,
/// parsing, bounds, and how to read or replace it in a (nested, immutable) configuration record.
/// </summary>
public sealed class Setting
{
    private readonly PropertyInfo[] _path;
    private readonly Regex? _pattern;

    internal Setting(PropertyInfo[] path, SettingAttribute attribute, object? defaultValue)
    {
        _path = path;
        var property = path[^1];
        Attribute = attribute;
        Name = attribute.Name ?? Words(property.Name, '-');
        JsonName = Name.Replace('-', '_');
        PropertyName = property.Name;
        ValueType = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        Optional = Nullable.GetUnderlyingType(property.PropertyType) is not null
            || (!property.PropertyType.IsValueType && new NullabilityInfoContext().Create(property).WriteState == NullabilityState.Nullable);
        Type = ValueType == typeof(int) || ValueType == typeof(long) ? SettingType.Integer
            : ValueType == typeof(double) ? SettingType.Real
            : ValueType.IsEnum || attribute.Choices is not null ? SettingType.Choice
            : ValueType == typeof(string) ? SettingType.Text
            : throw new InvalidOperationException($"setting {Name}: type {ValueType} is not supported");
        Choices = ValueType.IsEnum ? [.. Enum.GetValues(ValueType).Cast<object>().Select(ChoiceName)] : attribute.Choices;
        Default = defaultValue;
        _pattern = attribute.Pattern is null ? null : new Regex(attribute.Pattern, RegexOptions.CultureInvariant);
    }

    /// <summary>The command-line name, e.g. <c>global-batch</c> (<c>--global-batch</c>).</summary>
    public string Name { get; }

    /// <summary>The JSON and error name, e.g. <c>global_batch</c>.</summary>
    public string JsonName { get; }

    /// <summary>The C# property the setting lives in.</summary>
    public string PropertyName { get; }

    public SettingType Type { get; }

    /// <summary>The CLR type of the value (int, long, double, string or an enum).</summary>
    public Type ValueType { get; }

    /// <summary>May be absent (null): a path, a name or a command that has a computed default.</summary>
    public bool Optional { get; }

    public SettingAttribute Attribute { get; }

    public string Doc => Attribute.Doc;

    /// <summary>The accepted words of a choice setting, in declaration order.</summary>
    public IReadOnlyList<string>? Choices { get; }

    /// <summary>The default: the property's initial value in a new record.</summary>
    public object? Default { get; }

    /// <summary>The nested groups above the property (e.g. <c>Training.Optimizer</c>), for diagnostics.</summary>
    public string Path => string.Join('.', _path.Select(p => p.Name));

    /// <summary>The help line: the doc and the default.</summary>
    public string Help => Attribute.DefaultDoc is { } d ? $"{Doc} (default {d})"
        : Default is null ? Doc
        : $"{Doc} (default {Format(Default)})";

    /// <summary>Parses a value as given on the command line or in JSON (a string), refusing it by name.</summary>
    public object Parse(string text)
    {
        object value = Type switch
        {
            SettingType.Integer when ValueType == typeof(long) => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l)
                ? l : throw new ConfigException(JsonName, $"'{text}' is not a whole number"),
            SettingType.Integer => int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
                ? n : throw new ConfigException(JsonName, $"'{text}' is not a whole number"),
            SettingType.Real => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && double.IsFinite(x)
                ? x : throw new ConfigException(JsonName, $"'{text}' is not a number"),
            SettingType.Choice when ValueType.IsEnum => Enum.GetValues(ValueType).Cast<object>().FirstOrDefault(v => ChoiceName(v) == text)
                ?? throw new ConfigException(JsonName, $"'{text}' is not one of {string.Join(", ", Choices!)}"),
            _ => text,
        };
        Check(value);
        return value;
    }

    /// <summary>Refuses a value outside the setting's bounds, choices or pattern.</summary>
    public void Check(object? value)
    {
        if (value is null)
        {
            if (!Optional)
            {
                throw new ConfigException(JsonName, "must be set");
            }

            return;
        }

        var a = Attribute;
        if (Type is SettingType.Integer or SettingType.Real)
        {
            double x = Convert.ToDouble(value, CultureInfo.InvariantCulture);
            string shown = Format(value);
            if (!double.IsFinite(x))
            {
                throw new ConfigException(JsonName, $"must be a finite number (got {shown})");
            }

            if (a.Positive && !(x > 0))
            {
                throw new ConfigException(JsonName, $"must be positive (got {shown})");
            }

            bool low = !double.IsNaN(a.Min) && x < a.Min;
            bool high = !double.IsNaN(a.Max) && (a.ExclusiveMax ? x >= a.Max : x > a.Max);
            if (low || high)
            {
                throw new ConfigException(JsonName,
                    !double.IsNaN(a.Min) && !double.IsNaN(a.Max) ? a.ExclusiveMax ? $"must be in [{Number(a.Min)}, {Number(a.Max)}) (got {shown})" : $"must be between {Number(a.Min)} and {Number(a.Max)} (got {shown})"
                    : low ? $"must be at least {Number(a.Min)} (got {shown})"
                    : $"must be {(a.ExclusiveMax ? "below" : "at most")} {Number(a.Max)} (got {shown})");
            }

            return;
        }

        string text = Format(value);
        if (Choices is not null && !Choices.Contains(text))
        {
            throw new ConfigException(JsonName, $"'{text}' is not one of {string.Join(", ", Choices)}");
        }

        if (_pattern is not null && !_pattern.IsMatch(text))
        {
            throw new ConfigException(JsonName, $"'{text}' is not {a.PatternHint ?? "of the form " + a.Pattern}");
        }
    }

    /// <summary>The value as the command line and JSON write it.</summary>
    public string Format(object value) => value switch
    {
        Enum e => ChoiceName(e),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>The setting's value in <paramref name="root"/>.</summary>
    public object? Get(object root)
    {
        object? o = root;
        foreach (var p in _path)
        {
            o = p.GetValue(o);
        }

        return o;
    }

    /// <summary>A copy of <paramref name="root"/> with this setting replaced (records are copied, never changed).</summary>
    public T With<T>(T root, object? value)
        where T : class => (T)With(root, 0, value);

    private object With(object node, int depth, object? value)
    {
        var copy = Clone(node);
        var p = _path[depth];
        p.SetValue(copy, depth == _path.Length - 1 ? value : With(p.GetValue(node)!, depth + 1, value));
        return copy;
    }

    private static object Clone(object record) =>
        record.GetType().GetMethod("<Clone>$")?.Invoke(record, null)
        ?? throw new InvalidOperationException($"{record.GetType()} is not a record");

    internal static string ChoiceName(object enumValue)
    {
        var field = enumValue.GetType().GetField(enumValue.ToString()!)!;
        return field.GetCustomAttribute<SettingValueAttribute>()?.Name ?? field.Name.ToLowerInvariant();
    }

    private static string Number(double x) => x.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A PascalCase name in lower case with <paramref name="separator"/> between its words: <c>GlobalBatch</c> → <c>global-batch</c>.</summary>
    internal static string Words(string pascal, char separator) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) ? (i > 0 ? separator.ToString() : "") + char.ToLowerInvariant(c) : c.ToString()));
}

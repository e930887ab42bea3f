namespace DistClip.Model;

/// <summary>A model config that cannot be used; <see cref="Field"/> is the JSON path of the offending key.</summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string field, string detail, string? source = null)
        : base(source is null ? $"{field}: {detail}" : $"{source}: {field}: {detail}")
    {
        Field = field;
        Detail = detail;
        ConfigSource = source;
    }

    /// <summary>The key path, e.g. <c>vision.patch_size</c>.</summary>
    public string Field { get; }

    /// <summary>What is wrong with it, without the field name.</summary>
    public string Detail { get; }

    /// <summary>Where the config came from (a built-in name or a file path), when known.</summary>
    public string? ConfigSource { get; }

    /// <summary>The same error, attributed to <paramref name="source"/> (kept if already attributed).</summary>
    internal ConfigException WithSource(string source) =>
        ConfigSource is null ? new ConfigException(Field, Detail, source) : this;
}

namespace DistClip.Config;

/// <summary>
/// A setting, model config, hostfile or port that cannot be used, refused before work starts;
/// <see cref="Field"/> names it the way the user wrote it (a setting's snake_case name, or the JSON
/// path of a model config key). Fatal to a run (<see cref="IFatalRunError"/>): a replacement worker
/// would refuse the same setting.
/// </summary>
public sealed class ConfigException : Exception, IFatalRunError
{
    public ConfigException(string field, string detail, string? source = null)
        : base(source is null ? $"{field}: {detail}" : $"{source}: {field}: {detail}")
    {
        Field = field;
        Detail = detail;
        ConfigSource = source;
    }

    /// <summary>The setting or key path, e.g. <c>global_batch</c> or <c>vision.patch_size</c>.</summary>
    public string Field { get; }

    /// <summary>What is wrong with it, without the field name.</summary>
    public string Detail { get; }

    /// <summary>Where the config came from (a built-in name or a file path), when known.</summary>
    public string? ConfigSource { get; }

    /// <summary>The same error, attributed to <paramref name="source"/> (kept if already attributed).</summary>
    internal ConfigException WithSource(string source) =>
        ConfigSource is null ? new ConfigException(Field, Detail, source) : this;
}

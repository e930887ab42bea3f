namespace DistClip.Config.Settings;

/// <summary>
/// Makes a property of a configuration record a user setting: the one place a setting is defined.
/// Its command-line name (<c>--global-batch</c>), JSON name (<c>global_batch</c>), help line, Helm
/// schema entry and typed wire value all come from the property, this attribute and the property's
/// initial value (its default). See <see cref="SettingTable{T}"/>.
/// </summary>
/// <param name="doc">The help line, without the default (added from the property's initial value).</param>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
public sealed class SettingAttribute(string doc) : Attribute
{
    public string Doc { get; } = doc;

    /// <summary>The kebab-case name; defaults to the property's name in kebab case.</summary>
    public string? Name { get; set; }

    /// <summary>Inclusive lower bound of a number; NaN = none.</summary>
    public double Min { get; set; } = double.NaN;

    /// <summary>Inclusive upper bound of a number; NaN = none.</summary>
    public double Max { get; set; } = double.NaN;

    /// <summary><see cref="Max"/> is excluded (a value must be below it).</summary>
    public bool ExclusiveMax { get; set; }

    /// <summary>A number that must be above zero (an exclusive bound, for reals).</summary>
    public bool Positive { get; set; }

    /// <summary>The strings a text setting accepts.</summary>
    public string[]? Choices { get; set; }

    /// <summary>A regular expression (ECMAScript subset, so the Helm schema can use it too) a text setting must match.</summary>
    public string? Pattern { get; set; }

    /// <summary>What a value that fails <see cref="Pattern"/> should have been, for the error.</summary>
    public string? PatternHint { get; set; }

    /// <summary>How the default reads in help when it is not a plain value (e.g. "cores / workers").</summary>
    public string? DefaultDoc { get; set; }

    /// <summary>A setting that may differ when a run resumes from a checkpoint (it does not change the update).</summary>
    public bool Resumable { get; set; }

    /// <summary>False for settings the Helm chart owns or that mean nothing in a cluster (hostfile, ssh).</summary>
    public bool InChart { get; set; } = true;
}

/// <summary>A property holding a nested record of settings (its settings join the parent's table).</summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
public sealed class SettingGroupAttribute : Attribute;

/// <summary>The name an enum value takes in settings (default: its name in lower case).</summary>
[AttributeUsage(AttributeTargets.Field, AllowMultiple = false)]
public sealed class SettingValueAttribute(string name) : Attribute
{
    public string Name { get; } = name;
}

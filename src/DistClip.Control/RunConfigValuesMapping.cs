using DistClip.Config;
using DistClip.Config.Settings;
using DistClip.Control.V1;

namespace DistClip.Control;

/// <summary>
/// A <see cref="Config.RunConfig"/> to and from the typed <see cref="RunConfigValues"/> message the
/// coordinator sends each worker: every setting of the table by name, with a value of its own kind.
/// </summary>
public static class RunConfigValuesMapping
{
    /// <summary>More entries than any configuration has settings: a message beyond it is refused unread.</summary>
    private const int MaxValues = 1024;

    /// <summary>The longest text value (a path, a pattern or a command).</summary>
    private const int MaxTextLength = 16 << 10;

    public static RunConfigValues ToMessage(RunConfig config)
    {
        var message = new RunConfigValues();
        foreach (var (setting, value) in SettingTable<RunConfig>.Values(config))
        {
            var entry = new SettingValue { Name = setting.JsonName };
            switch (value)
            {
                case null:
                    break;
                case int or long:
                    entry.Integer = Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
                    break;
                case double d:
                    entry.Real = d;
                    break;
                default:
                    entry.Text = setting.Format(value);
                    break;
            }

            message.Values.Add(entry);
        }

        return message;
    }

    /// <summary>
    /// The configuration a message holds, every value checked against its setting; settings the
    /// message leaves out keep their defaults.
    /// </summary>
    /// <exception cref="ConfigException">An unknown or repeated name, a value of the wrong kind, or one out of bounds.</exception>
    public static RunConfig FromMessage(RunConfigValues message)
    {
        if (message.Values.Count > MaxValues)
        {
            throw new ConfigException("config", $"{message.Values.Count} settings; at most {MaxValues}");
        }

        var config = new RunConfig();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in message.Values)
        {
            var setting = SettingTable<RunConfig>.FindJson(entry.Name)
                ?? throw new ConfigException(Shown(entry.Name), "is not a setting this worker knows; are the coordinator and worker the same version?");
            if (!seen.Add(entry.Name))
            {
                throw new ConfigException(entry.Name, "appears twice");
            }

            object? value = (entry.ValueCase, setting.Type) switch
            {
                (SettingValue.ValueOneofCase.None, _) => null,
                (SettingValue.ValueOneofCase.Integer, SettingType.Integer) when setting.ValueType == typeof(long) => entry.Integer,
                (SettingValue.ValueOneofCase.Integer, SettingType.Integer) when entry.Integer is >= int.MinValue and <= int.MaxValue => (int)entry.Integer,
                (SettingValue.ValueOneofCase.Real, SettingType.Real) => entry.Real,
                (SettingValue.ValueOneofCase.Text, SettingType.Text or SettingType.Choice) when entry.Text.Length <= MaxTextLength =>
                    setting.ValueType.IsEnum ? setting.Parse(entry.Text) : entry.Text,
                _ => throw new ConfigException(entry.Name, $"a {entry.ValueCase} value does not fit a {setting.Type} setting"),
            };
            setting.Check(value);
            config = setting.With(config, value);
        }

        return config;
    }

    private static string Shown(string name) => name.Length <= 64 ? name : name[..64] + "...";
}

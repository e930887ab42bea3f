using System.Globalization;

namespace DistClip.Cli.CommandLine;

/// <summary>
/// A command line read against a command's <see cref="OptionSpec"/> table: <c>--name VALUE</c>,
/// <c>--name=VALUE</c>, flags, and positional arguments (everything after <c>--</c> is positional).
/// An option the table does not list, or one given twice that is not repeatable, is refused by name.
/// </summary>
internal sealed class ParsedArguments
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    private ParsedArguments(string command, List<string> positionals)
    {
        Command = command;
        Positionals = positionals;
    }

    public string Command { get; }

    public IReadOnlyList<string> Positionals { get; }

    public static ParsedArguments Parse(string command, IReadOnlyList<string> args, IReadOnlyList<OptionSpec> options)
    {
        var byName = options.ToDictionary(o => o.Name, StringComparer.Ordinal);
        var positionals = new List<string>();
        var parsed = new ParsedArguments(command, positionals);
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg == "--")
            {
                positionals.AddRange(args.Skip(i + 1));
                break;
            }

            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                if (arg.StartsWith('-') && arg.Length > 1)
                {
                    throw new UsageException($"{command}: unknown option '{arg}' (options are written --name; see 'distclip {command} --help')");
                }

                positionals.Add(arg);
                continue;
            }

            string name = arg[2..];
            string? inline = null;
            int equals = name.IndexOf('=', StringComparison.Ordinal);
            if (equals >= 0)
            {
                inline = name[(equals + 1)..];
                name = name[..equals];
            }

            if (!byName.TryGetValue(name, out var spec))
            {
                throw new UsageException($"{command}: unknown option --{name}; known: {string.Join(", ", options.Select(o => "--" + o.Name))}");
            }

            if (spec.IsFlag)
            {
                if (inline is not null)
                {
                    throw new UsageException($"{command}: --{name} is a flag and takes no value");
                }

                parsed._flags.Add(name);
                continue;
            }

            string value = inline ?? (i + 1 < args.Count ? args[++i] : throw new UsageException($"{command}: --{name} needs a value ({spec.ValueName})"));
            var list = parsed._values.TryGetValue(name, out var existing) ? existing : parsed._values[name] = [];
            if (list.Count > 0 && !spec.Repeatable)
            {
                throw new UsageException($"{command}: --{name} is given more than once");
            }

            list.Add(value);
        }

        return parsed;
    }

    public bool Flag(string name) => _flags.Contains(name);

    public string? Value(string name) => _values.TryGetValue(name, out var list) ? list[^1] : null;

    public IReadOnlyList<string> Values(string name) => _values.TryGetValue(name, out var list) ? list : [];

    public string Required(string name, string what) =>
        Value(name) ?? throw new UsageException($"{Command}: --{name} is required ({what})");

    public int Int(string name, int fallback, int min = int.MinValue)
    {
        if (Value(name) is not { } text)
        {
            return fallback;
        }

        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min)
        {
            throw new UsageException($"{Command}: --{name} must be an integer of at least {min}, got '{text}'");
        }

        return value;
    }
}

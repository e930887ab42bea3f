namespace DistClip.Cli.CommandLine;

/// <summary>One option of a command: <c>--name VALUE</c>, or a flag when <see cref="ValueName"/> is null.</summary>
internal sealed record OptionSpec(string Name, string? ValueName, string Help, bool Repeatable = false)
{
    public bool IsFlag => ValueName is null;

    public string Usage => IsFlag ? $"--{Name}" : $"--{Name} {ValueName}";
}

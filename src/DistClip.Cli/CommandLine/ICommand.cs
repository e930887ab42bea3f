namespace DistClip.Cli.CommandLine;

/// <summary>One <c>distclip</c> subcommand: its option table, help text and body.</summary>
internal interface ICommand
{
    string Name { get; }

    /// <summary>One line for <c>distclip help</c>.</summary>
    string Summary { get; }

    /// <summary>The usage line after <c>distclip NAME</c>, e.g. <c>--checkpoint DIR [options] IMAGE...</c>.</summary>
    string Usage { get; }

    IReadOnlyList<OptionSpec> Options { get; }

    /// <returns>The process exit code (<see cref="ExitCodes"/>).</returns>
    int Run(ParsedArguments args, CliContext context, CancellationToken ct);
}

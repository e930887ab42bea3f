using DistClip.Cli.CommandLine;
using DistClip.Cli.Commands;

namespace DistClip.Cli;

/// <summary>
/// <c>distclip</c>: use a trained (or imported) CLIP model. Dispatches to a command and turns every
/// refusal into one clear line on stderr and an exit code; the program's Main only adds the console.
/// </summary>
internal static class CliApp
{
    public static IReadOnlyList<ICommand> Commands { get; } =
        [new ClassifyCommand(), new IndexCommand(), new SearchCommand(), new EvalCommand()];

    public static int Run(IReadOnlyList<string> args, CliContext context, CancellationToken ct)
    {
        string name = args.Count > 0 ? args[0] : "help";
        if (name is "help" or "--help" or "-h")
        {
            PrintOverview(context.Out);
            return ExitCodes.Success;
        }

        var command = Commands.FirstOrDefault(c => c.Name == name);
        if (command is null)
        {
            context.Error.WriteLine($"error: unknown command '{name}'; commands: {string.Join(", ", Commands.Select(c => c.Name))} (see 'distclip help')");
            return ExitCodes.Usage;
        }

        var rest = args.Skip(1).ToList();
        if (rest.Contains("--help") || rest.Contains("-h"))
        {
            PrintHelp(context.Out, command);
            return ExitCodes.Success;
        }

        try
        {
            return command.Run(ParsedArguments.Parse(command.Name, rest, command.Options), context, ct);
        }
        catch (UsageException e)
        {
            context.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (RefusedException e)
        {
            context.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Failed;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            context.Error.WriteLine("interrupted");
            return ExitCodes.Interrupted;
        }
    }

    private static void PrintOverview(TextWriter output)
    {
        output.WriteLine("usage: distclip <command> [options]   (distclip <command> --help for its options)");
        foreach (var command in Commands)
        {
            output.WriteLine($"  {command.Name,-9} {command.Summary}");
        }
    }

    private static void PrintHelp(TextWriter output, ICommand command)
    {
        output.WriteLine($"usage: distclip {command.Name} {command.Usage}");
        output.WriteLine(command.Summary);
        output.WriteLine();
        int width = command.Options.Max(o => o.Usage.Length);
        foreach (var option in command.Options)
        {
            output.WriteLine($"  {option.Usage.PadRight(width)}  {option.Help}");
        }
    }
}

using DistClip.Coordinator.Cli;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };

        using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        }).SetMinimumLevel(LogLevel.Warning).AddFilter("DistClip", LogLevel.Information));

        string command = args.Length > 0 ? args[0] : "help";
        string[] rest = args.Length > 0 ? args[1..] : [];
        bool help = rest.Contains("--help") || rest.Contains("-h");
        switch (command)
        {
            case "launch" or "serve" when help:
                LaunchCommand.PrintHelp(Console.Out, serve: command == "serve");
                return ExitCodes.Success;
            case "launch":
                return await LaunchCommand.RunAsync(rest, serve: false, loggers, cts.Token);
            case "serve":
                return await LaunchCommand.RunAsync(rest, serve: true, loggers, cts.Token);
            case "help" or "--help" or "-h":
                Console.WriteLine("usage: coordinator <command>");
                Console.WriteLine("  launch   train a CLIP model with N workers on this machine (see 'coordinator launch --help')");
                Console.WriteLine("  serve    coordinate a run whose workers are started elsewhere (see 'coordinator serve --help')");
                return ExitCodes.Success;
            default:
                Console.Error.WriteLine($"error: unknown command '{command}'; try 'coordinator help'");
                return ExitCodes.BadConfiguration;
        }
    }
}

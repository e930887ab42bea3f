using DistClip.Coordinator.Cli;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator;

public static class Program
{
    public static int Main(string[] args)
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
        }).SetMinimumLevel(LogLevel.Information));

        string command = args.Length > 0 ? args[0] : "help";
        string[] rest = args.Length > 0 ? args[1..] : [];
        switch (command)
        {
            case "launch" when rest.Contains("--help") || rest.Contains("-h"):
                LaunchCommand.PrintHelp(Console.Out);
                return ExitCodes.Success;
            case "launch":
                return LaunchCommand.Run(rest, loggers, cts.Token);
            case "help" or "--help" or "-h":
                Console.WriteLine("usage: coordinator <command>");
                Console.WriteLine("  launch   train a CLIP model (see 'coordinator launch --help')");
                return ExitCodes.Success;
            default:
                Console.Error.WriteLine($"error: unknown command '{command}'; try 'coordinator help'");
                return ExitCodes.BadConfiguration;
        }
    }
}

using DistClip.Cli.CommandLine;
using Microsoft.Extensions.Logging;

namespace DistClip.Cli;

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

        // Logs (warnings, and what was loaded) go to stderr so that stdout carries only results.
        using var loggers = LoggerFactory.Create(b => b
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            })
            .AddFilter((_, level) => level >= LogLevel.Warning)
            .SetMinimumLevel(LogLevel.Warning));
        return CliApp.Run(args, new CliContext(Console.Out, Console.Error, loggers), cts.Token);
    }
}

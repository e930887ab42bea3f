using DistClip.Config;
using DistClip.Coordinator.Cli;
using DistClip.Coordinator.Reports;
using DistClip.Coordinator.Telemetry;
using DistClip.Telemetry;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator;

public static partial class Program
{
    public static async Task<int> Main(string[] args)
    {
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };

        // Kubernetes and schedulers stop with SIGTERM: end the run (its workers are told) and exit.
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            cts.Cancel();
        });

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
                CoordinatorCommand.PrintHelp(Console.Out, serve: command == "serve");
                return ExitCodes.Success;
            case "launch" or "serve":
                return await RunExportingMetricsAsync(rest, serve: command == "serve", loggers, cts.Token);
            case "report":
                return ReportCommand.Run(rest, Console.Out, Console.Error);
            case "help" or "--help" or "-h":
                Console.WriteLine("usage: coordinator <command>");
                Console.WriteLine("  launch   train a CLIP model with N workers on this machine (see 'coordinator launch --help')");
                Console.WriteLine("  serve    coordinate a run whose workers are started elsewhere (see 'coordinator serve --help')");
                Console.WriteLine("  report   draw the training plots of a finished run: coordinator report RUN_DIR");
                return ExitCodes.Success;
            default:
                Console.Error.WriteLine($"error: unknown command '{command}'; try 'coordinator help'");
                return ExitCodes.BadConfiguration;
        }
    }

    /// <summary>Serves /metrics for the whole life of the run (its own port, HTTP/1.1), then runs it.</summary>
    private static async Task<int> RunExportingMetricsAsync(string[] args, bool serve, ILoggerFactory loggers, CancellationToken ct)
    {
        CoordinatorCommand command;
        MetricsServer server;
        try
        {
            command = CoordinatorCommand.Parse(args, serve);
            server = await MetricsServer.StartAsync("distclip-coordinator", command.MetricsBind, command.MetricsPort, command.MetricsHost, ct);
        }
        catch (Exception e) when (e is ConfigException or MetricsPortException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine($"Run 'coordinator {(serve ? "serve" : "launch")} --help' for the settings.");
            return ExitCodes.BadConfiguration;
        }

        await using (server)
        {
            LogMetrics(loggers.CreateLogger("DistClip.Coordinator"), server.Address);
            PrometheusTargets.CoordinatorTarget = server.Target;
            return await LaunchCommand.RunAsync(command, loggers, ct);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Metrics for Prometheus at {Address}")]
    private static partial void LogMetrics(ILogger logger, Uri address);
}

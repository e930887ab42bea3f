using DistClip.Config;
using DistClip.Control;
using DistClip.Worker;
using Microsoft.Extensions.Logging;

// Before anything else: where tcmalloc is installed the worker runs again with it preloaded (same
// pid and arguments), since glibc's heap fragments under a training step (NativeAllocator).
try
{
    DistClip.Training.NativeAllocator.PreloadTcmalloc();
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return WorkerExitCodes.BadArguments;
}

WorkerOptions options;
try
{
    options = WorkerOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine("usage: worker --coordinator HOST:PORT [--preferred-rank N] [--secret-file FILE] [--bind ADDRESS] [--port N] [--advertise-host HOST] [--metrics-port N] [--metrics-bind ADDRESS] [--join-timeout S] [--link direct|grpc]");
    Console.Error.WriteLine($"for tests, {Faults.Variable} injects faults, each once per run (markers in {Faults.StateVariable}, default $TMPDIR/distclip-faults-RUNID):");
    Console.Error.WriteLine($"  {DistClip.Training.Faults.FaultPlan.Grammar}; see docs/architecture.md, \"Fault injection for tests\"");
    return WorkerExitCodes.BadArguments;
}

string? secret;
try
{
    secret = RunSecret.Load(options.SecretFile);
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
{
    Console.Error.WriteLine($"error: cannot use the secret file: {e.Message}");
    return WorkerExitCodes.BadArguments;
}

if (secret is null)
{
    Console.Error.WriteLine($"error: no run secret: pass --secret-file FILE or set {RunSecret.EnvironmentVariable}");
    return WorkerExitCodes.BadArguments;
}

using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
{
    o.SingleLine = true;
    o.TimestampFormat = "HH:mm:ss ";
}).SetMinimumLevel(LogLevel.Information));

using var cts = new CancellationTokenSource();
bool terminated = false;
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    // Abandon the step cleanly and exit non-zero, so that a scheduler does not count this worker as done.
    context.Cancel = true;
    terminated = true;
    Console.Error.WriteLine("SIGTERM: abandoning the current step; the worker exits with status 143");
    cts.Cancel();
});

try
{
    int code = await new WorkerHost(options, secret, loggers).RunAsync(cts.Token);
    return terminated ? WorkerExitCodes.Terminated : code;
}
catch (OperationCanceledException) when (terminated)
{
    return WorkerExitCodes.Terminated;
}
catch (Exception e) when (terminated)
{
    // SIGTERM cancelled the step mid-collective: the abandoned step surfaces as whatever failed first.
    loggers.CreateLogger("DistClip.Worker").LogWarning(e, "Worker stopped by SIGTERM");
    return WorkerExitCodes.Terminated;
}
catch (ConfigException e)
{
    // A setting this worker cannot run with (device cuda without a GPU, say): retrying cannot help.
    Console.Error.WriteLine($"error: {e.Message}");
    return WorkerExitCodes.BadArguments;
}
catch (Exception e)
{
    loggers.CreateLogger("DistClip.Worker").LogCritical(e, "Worker failed");
    return WorkerExitCodes.Failure;
}

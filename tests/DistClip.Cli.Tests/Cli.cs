using DistClip.Cli.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Cli.Tests;

/// <summary>What one in-process <c>distclip</c> invocation returned and printed.</summary>
internal sealed record CliResult(int ExitCode, string Out, string Error)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Out}\nstderr:\n{Error}";
}

/// <summary>Runs the real command-line entry point in this process, with string writers for the console.</summary>
internal static class Cli
{
    public static CliResult Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = CliApp.Run(args, new CliContext(output, error, NullLoggerFactory.Instance), CancellationToken.None);
        return new CliResult(exit, output.ToString(), error.ToString());
    }

    /// <summary>Runs and requires success, showing everything printed when it fails.</summary>
    public static CliResult Ok(params string[] args)
    {
        var result = Run(args);
        Assert.True(result.ExitCode == 0, $"distclip {string.Join(' ', args)} failed:\n{result}");
        return result;
    }
}

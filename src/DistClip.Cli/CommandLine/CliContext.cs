using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace DistClip.Cli.CommandLine;

/// <summary>What a command writes to and logs with; tests pass string writers and run commands in-process.</summary>
internal sealed class CliContext(TextWriter output, TextWriter error, ILoggerFactory loggers)
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        // Labels and captions are shown as typed ("café"), not as \u escapes; the output is never embedded in HTML.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Results: the table, or the JSON document with --json.</summary>
    public TextWriter Out { get; } = output;

    /// <summary>Progress, warnings and errors: never mixed into results, so --json output stays parseable.</summary>
    public TextWriter Error { get; } = error;

    public ILoggerFactory Loggers { get; } = loggers;

    public ILogger Logger { get; } = loggers.CreateLogger("DistClip.Cli");

    public void WriteJson<T>(T value) => Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace DistClip.Checkpoints.Tests;

/// <summary>A fresh checkpoint root under the temp directory, deleted on dispose.</summary>
internal sealed class TempRoot : IDisposable
{
    public TempRoot() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "distclip-ckpt-" + Guid.NewGuid().ToString("N"));

    public CheckpointStore Store(int keep = 3, ILogger? logger = null, TimeProvider? time = null) =>
        new(new CheckpointOptions(Path, "run-1", keep), logger, time);

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}

/// <summary>Small deterministic checkpoints whose content depends on the step.</summary>
internal static class Fixtures
{
    public static JsonElement Json(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    public static JsonElement Config { get; } = Json("""{"model":"clip-tiny","global_batch":256,"steps":1000}""");

    public static JsonObject State(long step) => new() { ["epoch"] = step / 100, ["cursor"] = new JsonArray(step, step + 1) };

    public static byte[] Bytes(long step, string name, int length = 4096)
    {
        var bytes = new byte[length];
        var random = new Random(unchecked((int)step * 31 + name.Length * 7 + name[0])); // HashCode is per-process random
        random.NextBytes(bytes);
        return bytes;
    }

    public static Dictionary<string, Action<Stream>> Files(long step) => new()
    {
        [CheckpointFiles.Model] = s => s.Write(Bytes(step, CheckpointFiles.Model)),
        [CheckpointFiles.Optimizer] = s => s.Write(Bytes(step, CheckpointFiles.Optimizer, 8192)),
    };

    public static CommittedCheckpoint Commit(this CheckpointStore store, long step) =>
        store.Commit(step, State(step), Config, Files(step), CancellationToken.None);

    public static byte[] Read(this ResolvedCheckpoint checkpoint, string name)
    {
        using Stream stream = checkpoint.Open(name);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    public static string StepDirectory(this CheckpointStore store, long step) =>
        System.IO.Path.Combine(store.RunDirectory, $"step-{step:D9}");

    public static string LatestText(this CheckpointStore store) =>
        File.ReadAllText(System.IO.Path.Combine(store.RunDirectory, "latest"), Encoding.UTF8);
}

/// <summary>Keeps every log line so tests can assert what an operator would see.</summary>
internal sealed class RecordingLogger : ILogger
{
    public List<(LogLevel Level, string Message)> Entries { get; } = [];

    public IEnumerable<string> At(LogLevel level) => Entries.Where(e => e.Level == level).Select(e => e.Message);

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Add((logLevel, formatter(state, exception)));
}

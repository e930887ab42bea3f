using System.Text.Json;
using System.Text.Json.Nodes;

namespace DistClip.Checkpoints;

/// <summary>
/// Checks one step directory against its MANIFEST and reads its state.json. Every failure is a
/// <see cref="CorruptCheckpointException"/> naming the directory and the first bad file.
/// </summary>
internal static class CheckpointVerifier
{
    /// <summary>Keys of state.json the library owns; callers may not set them.</summary>
    public static readonly IReadOnlySet<string> ReservedStateKeys = new HashSet<string>(StringComparer.Ordinal) { "step", "config", "config_hash" };

    public static ResolvedCheckpoint Verify(string directory, CancellationToken ct)
    {
        if (!Directory.Exists(directory))
        {
            throw new CorruptCheckpointException(directory, null, "the directory is missing");
        }
        IReadOnlyList<ManifestEntry> entries = Manifest.Read(directory);
        if (!entries.Any(e => e.Name == CheckpointFiles.State))
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.Manifest, $"does not list {CheckpointFiles.State}");
        }
        foreach (ManifestEntry entry in entries)
        {
            ct.ThrowIfCancellationRequested();
            VerifyFile(directory, entry, ct);
        }

        var warnings = new List<string>();
        var listed = entries.Select(e => e.Name).Append(CheckpointFiles.Manifest).ToHashSet(StringComparer.Ordinal);
        foreach (string path in Directory.EnumerateFileSystemEntries(directory).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(path);
            if (!listed.Contains(name))
            {
                // Harmless to loading (only listed files are opened) but worth a look: someone wrote here.
                warnings.Add($"Checkpoint {directory} holds {name}, which its MANIFEST does not list; ignored.");
            }
        }

        (long step, JsonObject state, JsonElement config, string hash) = ReadState(directory);
        string directoryName = Path.GetFileName(Path.TrimEndingDirectorySeparator(directory));
        if (CheckpointLayout.TryParseStep(directoryName, out long named) && named != step)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.State, $"says step {step} but the directory is step {named}");
        }
        string[] payload = [.. entries.Select(e => e.Name).Where(n => n != CheckpointFiles.State).Order(StringComparer.Ordinal)];
        return new ResolvedCheckpoint(step, directory, state, config, hash, payload, warnings);
    }

    private static void VerifyFile(string directory, ManifestEntry entry, CancellationToken ct)
    {
        string path = Path.Combine(directory, entry.Name);
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new CorruptCheckpointException(directory, entry.Name, "missing");
        }
        if (info.Length != entry.Size)
        {
            string how = info.Length < entry.Size ? "truncated" : "too long";
            throw new CorruptCheckpointException(directory, entry.Name, $"{how}: {info.Length} bytes, MANIFEST says {entry.Size}");
        }
        string actual = Manifest.Sha256Of(path, ct);
        if (actual != entry.Sha256)
        {
            throw new CorruptCheckpointException(directory, entry.Name, $"sha256 {actual} does not match MANIFEST's {entry.Sha256}");
        }
    }

    private static (long Step, JsonObject State, JsonElement Config, string Hash) ReadState(string directory)
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(directory, CheckpointFiles.State));
        JsonObject state;
        try
        {
            state = JsonNode.Parse(bytes) as JsonObject
                ?? throw new CorruptCheckpointException(directory, CheckpointFiles.State, "is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.State, $"is not valid JSON ({e.Message})");
        }
        // The sha256 already matched, so a failure below means a writer bug, not a bad disk.
        if (state["step"] is not JsonValue stepValue || !stepValue.TryGetValue(out long step) || step < 0)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.State, "has no non-negative integer 'step'");
        }
        if (state["config"] is not JsonObject configNode)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.State, "has no 'config' object");
        }
        if (state["config_hash"] is not JsonValue hashValue || !hashValue.TryGetValue(out string? hash))
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.State, "has no 'config_hash' string");
        }
        JsonElement config;
        using (JsonDocument document = JsonDocument.Parse(configNode.ToJsonString()))
        {
            config = document.RootElement.Clone();
        }
        string recomputed = CheckpointConfig.Hash(config);
        if (recomputed != hash)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.State, $"config_hash {hash} does not match its config ({recomputed})");
        }
        foreach (string key in ReservedStateKeys)
        {
            state.Remove(key);
        }
        return (step, state, config, hash);
    }
}

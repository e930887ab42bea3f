using System.Text.Json;
using System.Text.Json.Nodes;

namespace DistClip.Checkpoints;

/// <summary>
/// Checks one step directory against its MANIFEST and reads its state.json. Every failure is a
/// <see cref="CorruptCheckpointException"/> naming the directory and the first bad file. Only
/// regular files are opened (<see cref="CheckpointEntries"/>); state.json is read once, and the bytes
/// hashed are the bytes parsed. Payload files are hashed again as they are loaded
/// (<see cref="VerifyingReadStream"/>).
/// </summary>
internal static class CheckpointVerifier
{
    /// <summary>Keys of state.json the library owns; callers may not set them.</summary>
    public static readonly IReadOnlySet<string> ReservedStateKeys = new HashSet<string>(StringComparer.Ordinal) { "step", "config", "config_hash" };

    /// <summary>The largest state.json read (its curve grows with the run; a million steps is far below this).</summary>
    public const int MaxStateBytes = 256 << 20;

    /// <exception cref="OperationCanceledException">Cancelled, between files or within one (every 1 MiB).</exception>
    public static ResolvedCheckpoint Verify(string directory, CancellationToken ct)
    {
        if (CheckpointEntries.NotADirectory(directory) is { } what)
        {
            throw new CorruptCheckpointException(directory, null, what == "missing" ? "the directory is missing" : $"it is {what}, not a directory");
        }
        IReadOnlyList<ManifestEntry> entries = Manifest.Read(directory);
        ManifestEntry stateEntry = entries.FirstOrDefault(e => e.Name == CheckpointFiles.State)
            ?? throw new CorruptCheckpointException(directory, CheckpointFiles.Manifest, $"does not list {CheckpointFiles.State}");
        foreach (ManifestEntry entry in entries.Where(e => e != stateEntry))
        {
            ct.ThrowIfCancellationRequested();
            VerifyFile(directory, entry, ct);
        }
        byte[] stateBytes = ReadVerified(directory, stateEntry, MaxStateBytes);

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

        (long step, JsonObject state, JsonElement config, string hash) = ReadState(directory, stateBytes);
        string directoryName = Path.GetFileName(Path.TrimEndingDirectorySeparator(directory));
        if (CheckpointLayout.TryParseStep(directoryName, out long named) && named != step)
        {
            throw new CorruptCheckpointException(directory, CheckpointFiles.State, $"says step {step} but the directory is step {named}");
        }
        ManifestEntry[] payload = [.. entries.Where(e => e != stateEntry).OrderBy(e => e.Name, StringComparer.Ordinal)];
        return new ResolvedCheckpoint(step, directory, state, config, hash, payload, warnings);
    }

    private static void VerifyFile(string directory, ManifestEntry entry, CancellationToken ct)
    {
        using FileStream file = CheckpointEntries.OpenRegular(directory, entry.Name, bufferSize: 1);
        CheckSize(directory, entry, file.Length);
        CheckHash(directory, entry, Manifest.Sha256Of(file, ct));
    }

    /// <summary>A small file read whole, checked against its entry: the bytes returned are the bytes hashed.</summary>
    private static byte[] ReadVerified(string directory, ManifestEntry entry, int maxBytes)
    {
        if (entry.Size > maxBytes)
        {
            throw new CorruptCheckpointException(directory, entry.Name, $"MANIFEST says {entry.Size} bytes; at most {maxBytes} are read");
        }
        using FileStream file = CheckpointEntries.OpenRegular(directory, entry.Name, bufferSize: 1);
        CheckSize(directory, entry, file.Length);
        var bytes = new byte[entry.Size];
        int read = file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        CheckSize(directory, entry, read);
        CheckHash(directory, entry, Manifest.Sha256Of(bytes));
        return bytes;
    }

    private static void CheckSize(string directory, ManifestEntry entry, long length)
    {
        if (length != entry.Size)
        {
            string how = length < entry.Size ? "truncated" : "too long";
            throw new CorruptCheckpointException(directory, entry.Name, $"{how}: {length} bytes, MANIFEST says {entry.Size}");
        }
    }

    private static void CheckHash(string directory, ManifestEntry entry, string actual)
    {
        if (actual != entry.Sha256)
        {
            throw new CorruptCheckpointException(directory, entry.Name, $"sha256 {actual} does not match MANIFEST's {entry.Sha256}");
        }
    }

    private static (long Step, JsonObject State, JsonElement Config, string Hash) ReadState(string directory, byte[] bytes)
    {
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

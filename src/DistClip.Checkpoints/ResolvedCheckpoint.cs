using System.Text.Json;
using System.Text.Json.Nodes;

namespace DistClip.Checkpoints;

/// <summary>
/// A checkpoint whose every MANIFEST entry was present with the listed size and sha256 when it was
/// resolved, and is checked again as it is read (<see cref="Open"/>). <see cref="State"/> is the document the caller committed, without the library's own
/// <c>step</c>, <c>config</c> and <c>config_hash</c>, which are the properties here.
/// </summary>
public sealed class ResolvedCheckpoint
{
    private readonly IReadOnlyList<ManifestEntry> _entries;

    internal ResolvedCheckpoint(
        long step, string directory, JsonObject state, JsonElement config, string configHash,
        IReadOnlyList<ManifestEntry> files, IReadOnlyList<string> warnings)
    {
        Step = step;
        Directory = directory;
        State = state;
        Config = config;
        ConfigHash = configHash;
        _entries = files;
        Files = [.. files.Select(f => f.Name)];
        Warnings = warnings;
    }

    public long Step { get; }

    /// <summary>The full path of the step directory.</summary>
    public string Directory { get; }

    /// <summary>The caller's state document as committed.</summary>
    public JsonObject State { get; }

    /// <summary>The run config stored with the checkpoint.</summary>
    public JsonElement Config { get; }

    /// <summary><see cref="CheckpointConfig.Hash"/> of <see cref="Config"/>, as stored and re-checked.</summary>
    public string ConfigHash { get; }

    /// <summary>The payload files the MANIFEST lists (state.json excluded), sorted by name.</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>
    /// What resolving had to step around: newer checkpoints rejected (naming directory and file), a
    /// missing or unreadable <c>latest</c>, unlisted files. Empty on the happy path. Also logged.
    /// </summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>
    /// Opens a payload file for reading, front to back (not seekable). Its bytes are hashed as they
    /// are read: the read that would deliver the last byte throws <see cref="CorruptCheckpointException"/>
    /// instead when the file no longer matches MANIFEST (changed or swapped since it was verified).
    /// </summary>
    /// <exception cref="FileNotFoundException">The MANIFEST does not list <paramref name="name"/>.</exception>
    /// <exception cref="CorruptCheckpointException">It is no longer a regular file.</exception>
    public Stream Open(string name)
    {
        // Only listed files were verified; anything else in the directory is not part of the checkpoint.
        ManifestEntry entry = _entries.FirstOrDefault(e => e.Name == name)
            ?? throw new FileNotFoundException(
                $"Checkpoint {Directory} has no file '{name}' (it holds: {string.Join(", ", Files)}).", name);
        return new VerifyingReadStream(CheckpointEntries.OpenRegular(Directory, name, bufferSize: 1 << 20), Directory, entry);
    }

    /// <summary>
    /// Throws <see cref="CheckpointMismatchException"/> when <paramref name="current"/> differs from
    /// <see cref="Config"/> in any field outside <paramref name="allowedToChange"/>.
    /// </summary>
    public void EnsureConfigCompatible(JsonElement current, IReadOnlySet<string>? allowedToChange = null) =>
        CheckpointConfig.EnsureCompatible(Config, current, allowedToChange);

    internal ResolvedCheckpoint WithWarnings(IReadOnlyList<string> earlier) =>
        earlier.Count == 0 ? this : new(Step, Directory, State, Config, ConfigHash, _entries, [.. earlier, .. Warnings]);
}

using System.Text.Json;
using System.Text.Json.Nodes;

namespace DistClip.Checkpoints;

/// <summary>
/// A checkpoint whose every MANIFEST entry was present with the listed size and sha256 when it was
/// resolved. <see cref="State"/> is the document the caller committed, without the library's own
/// <c>step</c>, <c>config</c> and <c>config_hash</c>, which are the properties here.
/// </summary>
public sealed class ResolvedCheckpoint
{
    private readonly IReadOnlySet<string> _listed;

    internal ResolvedCheckpoint(
        long step, string directory, JsonObject state, JsonElement config, string configHash,
        IReadOnlyList<string> files, IReadOnlyList<string> warnings)
    {
        Step = step;
        Directory = directory;
        State = state;
        Config = config;
        ConfigHash = configHash;
        Files = files;
        Warnings = warnings;
        _listed = files.ToHashSet(StringComparer.Ordinal);
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

    /// <summary>Opens a payload file for reading.</summary>
    /// <exception cref="FileNotFoundException">The MANIFEST does not list <paramref name="name"/>.</exception>
    public Stream Open(string name)
    {
        // Only listed files were verified; anything else in the directory is not part of the checkpoint.
        if (!_listed.Contains(name))
        {
            throw new FileNotFoundException(
                $"Checkpoint {Directory} has no file '{name}' (it holds: {string.Join(", ", Files)}).", name);
        }
        return new FileStream(Path.Combine(Directory, name), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
    }

    /// <summary>
    /// Throws <see cref="CheckpointMismatchException"/> when <paramref name="current"/> differs from
    /// <see cref="Config"/> in any field outside <paramref name="allowedToChange"/>.
    /// </summary>
    public void EnsureConfigCompatible(JsonElement current, IReadOnlySet<string>? allowedToChange = null) =>
        CheckpointConfig.EnsureCompatible(Config, current, allowedToChange);

    internal ResolvedCheckpoint WithWarnings(IReadOnlyList<string> earlier) =>
        earlier.Count == 0 ? this : new(Step, Directory, State, Config, ConfigHash, Files, [.. earlier, .. Warnings]);
}

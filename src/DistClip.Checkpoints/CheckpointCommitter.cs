using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace DistClip.Checkpoints;

/// <summary>
/// The write path, in the order that keeps a crash harmless at every point:
/// 1. write each file into <c>.tmp-step-N-random/</c>, fsync it; state.json next; MANIFEST last;
/// 2. fsync the temp directory (its file names are now durable);
/// 3. rename it to <c>step-N</c> and fsync the run directory (the new name is durable);
/// 4. write <c>.tmp-latest-random</c>, fsync it, rename it over <c>latest</c>, fsync the run directory.
/// Before 3 nothing a reader looks at has changed; between 3 and 4 <c>latest</c> still names the
/// previous complete checkpoint.
/// </summary>
internal sealed class CheckpointCommitter(string runDirectory, ILogger logger)
{
    private bool _reportedNoDirectorySync;

    public void EnsureRunDirectory()
    {
        if (Directory.Exists(runDirectory))
        {
            return;
        }
        Directory.CreateDirectory(runDirectory);
        // The run directory's own name lives in the root; sync it so the first checkpoint is findable.
        SyncDirectory(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(runDirectory))!);
    }

    /// <summary>Steps 1–3. Returns the step directory and the bytes written into it.</summary>
    public (string Directory, long Bytes) WriteStepDirectory(
        long step, JsonObject state, JsonElement config, IReadOnlyDictionary<string, Action<Stream>> files, CancellationToken ct)
    {
        string name = CheckpointLayout.StepDirectoryName(step);
        string temp = Path.Combine(runDirectory, $"{CheckpointLayout.TempPrefix}{name}-{RandomSuffix()}");
        Directory.CreateDirectory(temp);
        try
        {
            var entries = new List<ManifestEntry>();
            foreach ((string fileName, Action<Stream> write) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
            {
                ct.ThrowIfCancellationRequested();
                entries.Add(WriteFile(temp, fileName, write));
            }
            ct.ThrowIfCancellationRequested();
            entries.Add(WriteFile(temp, CheckpointFiles.State, s => WriteState(s, step, state, config)));
            byte[] manifest = Manifest.Format(entries);
            ManifestEntry written = WriteFile(temp, CheckpointFiles.Manifest, s => s.Write(manifest));
            SyncDirectory(temp);
            // The last point where cancelling leaves no trace: after the rename the checkpoint exists.
            ct.ThrowIfCancellationRequested();
            string final = Path.Combine(runDirectory, name);
            MoveIntoPlace(temp, final);
            return (final, entries.Sum(e => e.Size) + written.Size);
        }
        catch
        {
            // A failed writer or a cancel: remove our temp directory now rather than wait for the
            // next commit's cleanup. A hard crash never gets here; that is what the cleanup is for.
            TryDeleteDirectory(temp);
            throw;
        }
    }

    /// <summary>Step 4: atomically replace <c>latest</c> with the name of a committed step directory.</summary>
    public void PointLatestAt(string stepDirectory)
    {
        string temp = Path.Combine(runDirectory, $"{CheckpointLayout.TempPrefix}{CheckpointLayout.LatestFileName}-{RandomSuffix()}");
        using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            file.Write(Encoding.UTF8.GetBytes(Path.GetFileName(stepDirectory) + "\n"));
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, Path.Combine(runDirectory, CheckpointLayout.LatestFileName), overwrite: true); // rename(2)
        SyncDirectory(runDirectory);
    }

    public void SyncDirectory(string directory)
    {
        if (!DirectorySync.TryFlush(directory) && !_reportedNoDirectorySync)
        {
            _reportedNoDirectorySync = true;
            Log.DirectorySyncUnavailable(logger, directory);
        }
    }

    private void MoveIntoPlace(string temp, string final)
    {
        if (Directory.Exists(final))
        {
            // The same step committed again, after resuming from an older checkpoint (past a corrupt
            // one, or from an explicit directory). Move the old one aside rather than delete it in
            // place, so no step directory is ever half deleted; pruning removes it. Should a crash
            // fall between the two renames, `latest` may name a missing directory for a moment, and
            // resolving falls back to the next older checkpoint.
            string aside = Path.Combine(runDirectory, $"{CheckpointLayout.TempPrefix}replaced-{Path.GetFileName(final)}-{RandomSuffix()}");
            Directory.Move(final, aside);
        }
        Directory.Move(temp, final); // rename(2): atomic within one filesystem, and the temp dir is a sibling
        SyncDirectory(runDirectory);
    }

    private static ManifestEntry WriteFile(string directory, string name, Action<Stream> write)
    {
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 1 << 20,
        };
        using var file = new FileStream(Path.Combine(directory, name), options);
        using var hashing = new HashingWriteStream(file);
        write(hashing);
        file.Flush(flushToDisk: true); // flushes FileStream's buffer, then fsync(2)
        return new ManifestEntry(name, hashing.Length, hashing.Sha256Hex());
    }

    private static void WriteState(Stream stream, long step, JsonObject state, JsonElement config)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteNumber("step", step);
        json.WriteString("config_hash", CheckpointConfig.Hash(config));
        json.WritePropertyName("config");
        config.WriteTo(json);
        foreach ((string key, JsonNode? value) in state)
        {
            json.WritePropertyName(key);
            if (value is null)
            {
                json.WriteNullValue();
            }
            else
            {
                value.WriteTo(json);
            }
        }
        json.WriteEndObject();
    }

    private void TryDeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.DeleteFailed(logger, e, path);
        }
    }

    private static string RandomSuffix() => RandomNumberGenerator.GetHexString(12, lowercase: true);
}

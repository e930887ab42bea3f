using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Checkpoints;

/// <summary>
/// One run's checkpoints on shared storage:
/// <code>
/// &lt;root&gt;/&lt;run-id&gt;/
///   step-000001200/   payload files (model.bin, optimizer.bin, …), state.json, MANIFEST
///   latest            "step-000001200\n"; replaced by atomic rename
/// </code>
/// A commit is never visible half written (see <see cref="CheckpointCommitter"/>); resolving verifies
/// every file against MANIFEST and steps back past corrupt checkpoints. One writer per run
/// (rank 0), one commit at a time: neither concurrent processes nor concurrent calls on one
/// instance are supported (pruning would delete the other writer's temp directory).
/// </summary>
public sealed class CheckpointStore
{
    private readonly CheckpointOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CheckpointCommitter _committer;
    private readonly CheckpointPruner _pruner;

    public CheckpointStore(CheckpointOptions options, ILogger? logger = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        RunDirectory = Path.GetFullPath(Path.Combine(options.Root, options.RunId));
        _committer = new CheckpointCommitter(RunDirectory, _logger);
        _pruner = new CheckpointPruner(RunDirectory, options.Keep, _logger);
        CheckpointMetrics.Announce();
    }

    /// <summary><c>&lt;root&gt;/&lt;run-id&gt;</c>, as a full path.</summary>
    public string RunDirectory { get; }

    /// <summary>
    /// Where a store over <paramref name="root"/> and <paramref name="runId"/> commits the checkpoint of
    /// <paramref name="step"/>, as a full path: what the coordinator holds a checkpoint report to.
    /// </summary>
    public static string StepDirectory(string root, string runId, long step) =>
        Path.Combine(Path.GetFullPath(Path.Combine(root, runId)), CheckpointLayout.StepDirectoryName(step));

    /// <summary>
    /// Writes one checkpoint atomically, points <c>latest</c> at it, then prunes (keep the newest
    /// <see cref="CheckpointOptions.Keep"/>, drop leftovers of interrupted writes).
    /// </summary>
    /// <param name="step">The optimizer step; names the directory and is stored as <c>step</c>.</param>
    /// <param name="state">
    /// The caller's state document (epoch, data cursor, RNG state…). It must not contain
    /// <c>step</c>, <c>config</c> or <c>config_hash</c>: the library writes those.
    /// </param>
    /// <param name="config">The run config, a JSON object; stored with its <see cref="CheckpointConfig.Hash"/>.</param>
    /// <param name="files">
    /// Payload files by name (e.g. <see cref="CheckpointFiles.Model"/>), each written by its action
    /// to the stream it is handed (write-only, not seekable). Written in name order.
    /// </param>
    /// <param name="ct">Honoured between files and up to the rename that publishes the checkpoint.</param>
    /// <exception cref="OperationCanceledException">Cancelled before publishing; nothing on disk changed.</exception>
    /// <exception cref="IOException">The storage refused a write (full, gone): counted as a failed checkpoint; the temporary directory is removed and <c>latest</c> is unchanged.</exception>
    /// <exception cref="UnauthorizedAccessException">The storage is read-only or not ours: counted the same way.</exception>
    public CommittedCheckpoint Commit(
        long step, JsonObject state, JsonElement config, IReadOnlyDictionary<string, Action<Stream>> files, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(files);
        ValidateArguments(state, config, files);
        ct.ThrowIfCancellationRequested();
        try
        {
            return CommitValidated(step, state, config, files, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            CheckpointMetrics.RecordFailure();
            throw;
        }
    }

    private CommittedCheckpoint CommitValidated(
        long step, JsonObject state, JsonElement config, IReadOnlyDictionary<string, Action<Stream>> files, CancellationToken ct)
    {

        long started = _time.GetTimestamp();
        _committer.EnsureRunDirectory();
        (string directory, long bytes) = _committer.WriteStepDirectory(step, state, config, files, ct);
        // From here on the checkpoint exists; cancelling would only leave `latest` one behind.
        _committer.PointLatestAt(directory);
        _pruner.Prune(step);
        TimeSpan duration = _time.GetElapsedTime(started);
        Log.Committed(_logger, step, directory, bytes, duration.TotalMilliseconds);
        CheckpointMetrics.RecordCommit(bytes, duration, _time.GetUtcNow());
        return new CommittedCheckpoint(step, directory, bytes, duration);
    }

    /// <summary>Steps of the <c>step-*</c> directories present, ascending. Not verified.</summary>
    public IReadOnlyList<long> CommittedSteps() => CheckpointLayout.ListSteps(RunDirectory);

    /// <summary>
    /// The checkpoint <c>latest</c> names, verified. If it fails verification (or <c>latest</c> is
    /// missing or names a missing directory), older step directories are tried newest first, and each
    /// rejection becomes a warning naming the directory and the bad file (logged, and in
    /// <see cref="ResolvedCheckpoint.Warnings"/>). Step directories newer than the one <c>latest</c>
    /// names are never used: they were not committed (crash before <c>latest</c> moved) or were abandoned.
    /// </summary>
    /// <returns>Null when the run has no checkpoint at all (a fresh start).</returns>
    /// <exception cref="CheckpointNotFoundException">Checkpoints exist but none verifies; lists each problem.</exception>
    public ResolvedCheckpoint? ResolveLatest(CancellationToken ct)
    {
        var warnings = new List<string>();
        var problems = new List<string>();
        IReadOnlyList<long> steps = CommittedSteps();
        bool latestExists = File.Exists(Path.Combine(RunDirectory, CheckpointLayout.LatestFileName));
        if (steps.Count == 0 && !latestExists)
        {
            return null;
        }

        string? latest = CheckpointLayout.TryReadLatest(RunDirectory, out string? latestProblem);
        IEnumerable<long> candidates;
        if (latest is not null && CheckpointLayout.TryParseStep(latest, out long latestStep))
        {
            candidates = steps.Where(s => s < latestStep).OrderDescending().Prepend(latestStep);
        }
        else
        {
            Warn(warnings, $"{latestProblem}; using the newest step directory that verifies");
            candidates = steps.OrderDescending();
        }

        foreach (long step in candidates)
        {
            ct.ThrowIfCancellationRequested();
            string directory = Path.Combine(RunDirectory, CheckpointLayout.StepDirectoryName(step));
            try
            {
                ResolvedCheckpoint found = CheckpointVerifier.Verify(directory, ct).WithWarnings(warnings);
                foreach (string warning in found.Warnings.Skip(warnings.Count))
                {
                    Log.ResolveWarning(_logger, warning);
                }
                Log.Resolved(_logger, found.Step, found.Directory);
                return found;
            }
            catch (CorruptCheckpointException e)
            {
                Log.SkippedCorrupt(_logger, e.Message);
                warnings.Add(e.Message + "; using an older checkpoint");
                problems.Add(e.Message);
            }
        }
        throw new CheckpointNotFoundException($"No valid checkpoint in {RunDirectory}.", problems.Count > 0 ? problems : [latestProblem ?? "no step directories"]);
    }

    /// <summary>
    /// An explicit step directory, verified. Unlike <see cref="ResolveLatest"/> there is no fallback:
    /// the caller asked for this one.
    /// </summary>
    /// <exception cref="CheckpointNotFoundException">The directory does not exist.</exception>
    /// <exception cref="CorruptCheckpointException">It fails verification; names the bad file.</exception>
    public static ResolvedCheckpoint ResolveDirectory(string path, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string directory = Path.GetFullPath(path);
        // lstat, not Directory.Exists: a link or a FIFO given as the directory is refused by Verify, naming it.
        string? what = CheckpointEntries.NotADirectory(directory);
        if (what == "missing" || (what is null && !Directory.Exists(directory)))
        {
            throw new CheckpointNotFoundException($"Checkpoint directory {directory} does not exist.", []);
        }
        return CheckpointVerifier.Verify(directory, ct);
    }

    private void Warn(List<string> warnings, string warning)
    {
        warnings.Add(warning);
        Log.ResolveWarning(_logger, warning);
    }

    private static void ValidateArguments(JsonObject state, JsonElement config, IReadOnlyDictionary<string, Action<Stream>> files)
    {
        if (config.ValueKind != JsonValueKind.Object)
        {
            throw new ArgumentException($"The config must be a JSON object, not {config.ValueKind}.", nameof(config));
        }
        foreach (string key in CheckpointVerifier.ReservedStateKeys)
        {
            if (state.ContainsKey(key))
            {
                throw new ArgumentException($"The state must not contain '{key}': the checkpoint library writes it.", nameof(state));
            }
        }
        foreach (string name in files.Keys)
        {
            if (!CheckpointLayout.IsPlainName(name) || name.StartsWith('.') || name is CheckpointFiles.State or CheckpointFiles.Manifest)
            {
                throw new ArgumentException(
                    $"'{name}' cannot be a checkpoint file name: use letters, digits, '.', '_', '-', no leading dot, " +
                    $"and not {CheckpointFiles.State} or {CheckpointFiles.Manifest}.", nameof(files));
            }
        }
    }
}

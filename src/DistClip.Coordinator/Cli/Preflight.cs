using System.Globalization;
using DistClip.Checkpoints;
using DistClip.Config;
using DistClip.Control;
using DistClip.Data;

namespace DistClip.Coordinator.Cli;

/// <summary>The resolved plan of a run: everything checked before the first worker starts.</summary>
/// <param name="WorkerGpus">The CUDA_VISIBLE_DEVICES of each worker slot the launcher starts; null
/// leaves the workers' environment alone (device cpu, auto on a host without GPUs, serve).</param>
public sealed record RunPlan(
    RunConfig Settings, string RunId, string RunDirectory, string CheckpointRoot, ResolvedCheckpoint? Resume,
    IReadOnlyList<Launchers.HostEntry>? Hosts, IReadOnlyList<string>? WorkerGpus);

/// <summary>
/// Refuses a run that cannot work before anything starts, naming the field and the fix: unknown
/// model, missing dataset, a global batch larger than the dataset, unwritable checkpoint directory, a checkpoint that is corrupt or was
/// trained with other settings, more workers on a host than it has GPUs for them.
/// </summary>
public static class Preflight
{
    /// <param name="localGpus">The GPUs of this host when this coordinator starts the workers (launch);
    /// null when they are started elsewhere (serve). A hostfile run places its workers by the hostfile.</param>
    /// <param name="ct">Cancels verifying the checkpoint to resume from (seconds for a large model).</param>
    /// <exception cref="OperationCanceledException">Cancelled while verifying it.</exception>
    public static RunPlan Check(RunConfig settings, Action<string> warn, Launchers.GpuInventory? localGpus, CancellationToken ct)
    {
        IReadOnlyList<Launchers.HostEntry>? hosts = null;
        if (settings.Hostfile is not null)
        {
            hosts = Launchers.Hostfile.Parse(settings.Hostfile);
            int slots = hosts.Sum(h => h.Slots);
            if (settings.Workers != 0 && settings.Workers != slots)
            {
                throw new ConfigException("workers", $"{settings.Workers} workers asked for, but {settings.Hostfile} has {slots} slots; give one or the other");
            }

            settings = settings with { Workers = slots };
        }
        else if (settings.Workers == 0)
        {
            settings = settings with { Workers = 2 };
        }

        settings.Validate();
        var workerGpus = localGpus is null ? null
            : hosts is not null ? Launchers.GpuPlacement.ForHosts(settings.Training.Device, hosts)
            : Launchers.GpuPlacement.ForThisHost(settings.Training.Device, settings.Workers, localGpus);
        var model = ClipConfig.Load(settings.Training.Model); // refuses unknown names and bad files by field
        TokenizerSource.EnsureFits(TokenizerSource.Open(settings.Training.Tokenizer), model);
        if (settings.Training.Init is { } init && !File.Exists(init))
        {
            throw new ConfigException("init", $"{init} does not exist");
        }

        DatasetSource.EnsureAvailable(settings.Training.Dataset);
        int samples = DatasetSource.CountTrain(settings.Training.Dataset);
        if (settings.Training.GlobalBatch > samples)
        {
            throw new ConfigException("global_batch",
                $"{settings.Training.GlobalBatch} is larger than the {samples:N0} training samples of {settings.Training.Dataset}; a step needs a whole global batch");
        }

        string root = Path.GetFullPath(settings.CheckpointDir);
        EnsureWritable(root, "checkpoint_dir");

        ResolvedCheckpoint? resume = null;
        string? runId = settings.RunId;
        if (settings.Resume is not null)
        {
            (resume, runId) = ResolveResume(settings.Resume, root, runId, warn, ct);
            // Workers load only from under the checkpoint root (they refuse anything else): say so now, not at join.
            ResumeDirectory.EnsureUnder(resume.Directory, root);
            try
            {
                resume.EnsureConfigCompatible(TrainOptionsJson.CheckpointConfig(settings.Training, settings.Workers), TrainOptions.ResumableChanges);
            }
            catch (CheckpointMismatchException e)
            {
                throw new ConfigException("resume",
                    $"{resume.Directory} was trained with other settings; refusing to resume. Differences:\n  " + string.Join("\n  ", e.Differences));
            }
        }

        runId ??= DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..6];
        string runDir = Path.GetFullPath(settings.RunDir ?? Path.Combine("runs", runId));
        EnsureWritable(runDir, "run_dir");
        return new RunPlan(settings, runId, runDir, root, resume, hosts, workerGpus);
    }

    private static (ResolvedCheckpoint, string RunId) ResolveResume(string resume, string root, string? runId, Action<string> warn, CancellationToken ct)
    {
        if (resume != "latest")
        {
            ResolvedCheckpoint direct;
            try
            {
                direct = CheckpointStore.ResolveDirectory(resume, ct);
            }
            catch (IOException e)
            {
                throw new ConfigException("resume", e.Message);
            }

            string parent = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(direct.Directory))!);
            return (direct, runId ?? parent);
        }

        runId ??= NewestRun(root) ?? throw new ConfigException("resume", $"no run with a checkpoint under {root}; name one with --run-id or give a checkpoint directory");
        ResolvedCheckpoint? latest;
        try
        {
            latest = new CheckpointStore(new CheckpointOptions(root, runId)).ResolveLatest(ct);
        }
        catch (IOException e)
        {
            throw new ConfigException("resume", e.Message);
        }

        if (latest is null)
        {
            throw new ConfigException("resume", $"run {runId} under {root} has no committed checkpoint");
        }

        foreach (string w in latest.Warnings)
        {
            warn(w);
        }

        return (latest, runId);
    }

    /// <summary>The run under the root whose <c>latest</c> pointer changed last.</summary>
    private static string? NewestRun(string root) =>
        !Directory.Exists(root) ? null : new DirectoryInfo(root).EnumerateDirectories()
            .Where(d => File.Exists(Path.Combine(d.FullName, "latest")))
            .OrderByDescending(d => File.GetLastWriteTimeUtc(Path.Combine(d.FullName, "latest")))
            .Select(d => d.Name)
            .FirstOrDefault();

    private static void EnsureWritable(string directory, string field)
    {
        try
        {
            Directory.CreateDirectory(directory);
            string probe = Path.Combine(directory, $".write-probe-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(field, $"{directory} is not writable: {e.Message}");
        }
    }
}

using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace DistClip.Checkpoints;

/// <summary>
/// Housekeeping after a successful commit of step S (so <c>latest</c> names S):
/// <list type="bullet">
/// <item>step directories newer than S are deleted: they belong to a timeline this run abandoned
/// when it resumed from an older checkpoint, and left in place they would be mistaken for progress;</item>
/// <item>of the rest, the newest <c>Keep</c> stay (S among them) and older ones are deleted;</item>
/// <item>every <c>.tmp-*</c> entry left by an interrupted write is removed.</item>
/// </list>
/// A step directory is first renamed to <c>.tmp-deleting-…</c>, so a crash mid-delete never leaves a
/// half-deleted step behind. Failures are logged and retried at the next commit: the commit itself
/// already succeeded.
/// </summary>
internal sealed class CheckpointPruner(string runDirectory, int keep, ILogger logger)
{
    public void Prune(long committedStep)
    {
        string? latest = CheckpointLayout.TryReadLatest(runDirectory, out _);
        IReadOnlyList<long> steps = CheckpointLayout.ListSteps(runDirectory);
        var keepers = steps.Where(s => s <= committedStep).OrderDescending().Take(keep).ToHashSet();
        foreach (long step in steps)
        {
            string name = CheckpointLayout.StepDirectoryName(step);
            if (keepers.Contains(step) || name == latest)
            {
                continue; // never delete what `latest` names, whatever the arithmetic says
            }
            string reason = step > committedStep
                ? $"newer than step {committedStep}, from before this run resumed at an older checkpoint"
                : $"beyond the newest {keep}";
            if (TryRemove(Path.Combine(runDirectory, name), name))
            {
                Log.Deleted(logger, Path.Combine(runDirectory, name), reason);
            }
        }
        RemoveLeftovers();
    }

    private void RemoveLeftovers()
    {
        foreach (string path in Directory.EnumerateFileSystemEntries(runDirectory, CheckpointLayout.TempPrefix + "*"))
        {
            try
            {
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }
                else
                {
                    File.Delete(path);
                }
                Log.RemovedLeftover(logger, path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.DeleteFailed(logger, e, path);
            }
        }
    }

    private bool TryRemove(string directory, string name)
    {
        string doomed = Path.Combine(runDirectory, $"{CheckpointLayout.TempPrefix}deleting-{name}-{RandomNumberGenerator.GetHexString(12, lowercase: true)}");
        try
        {
            Directory.Move(directory, doomed);
            Directory.Delete(doomed, recursive: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.DeleteFailed(logger, e, directory);
            return false;
        }
    }
}

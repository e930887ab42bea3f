using DistClip.Config;

namespace DistClip.Control;

/// <summary>
/// Where a run may resume from: only a directory under its checkpoint root. The resume directory
/// reaches a worker in its assignment, and a worker loads whatever it names (weights, optimizer
/// state); held to the root, a forged or mistaken path cannot point the run at an arbitrary
/// directory. The coordinator checks it before any worker starts, and every worker again before it
/// loads.
/// </summary>
public static class ResumeDirectory
{
    /// <summary>
    /// <paramref name="directory"/>'s full path, once it is under <paramref name="checkpointRoot"/>
    /// (both normalised by <see cref="Path.GetFullPath(string)"/>, so <c>..</c> cannot climb out) and
    /// no directory between the root and it is a symbolic link (which could lead out again).
    /// </summary>
    /// <exception cref="ConfigException">Either is not so, naming both paths.</exception>
    public static string EnsureUnder(string directory, string checkpointRoot)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentException.ThrowIfNullOrEmpty(checkpointRoot);
        var (root, full) = Normalise(directory, checkpointRoot);
        if (!Below(full, root))
        {
            throw new ConfigException("resume",
                $"the checkpoint to resume from, {full}, is not under the run's checkpoint directory {root}; refusing to load it");
        }

        // Every component below the root, from the root down: a link anywhere on the way could point
        // outside the root while the path still reads as inside it.
        string[] parts = full[(root.Length + 1)..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        string at = root;
        foreach (string part in parts)
        {
            at = Path.Combine(at, part);
            if (new DirectoryInfo(at).LinkTarget is { } target)
            {
                throw new ConfigException("resume",
                    $"the checkpoint to resume from, {full}, passes through the symbolic link {at} (to {target}) under the run's " +
                    $"checkpoint directory {root}; refusing to load it");
            }
        }

        return full;
    }

    /// <summary>
    /// Whether <paramref name="directory"/> reads as a directory under <paramref name="checkpointRoot"/>
    /// once both are normalised: the path alone, without touching the file system (the coordinator
    /// checks a checkpoint report with it, and may not see the workers' storage; the workers'
    /// <see cref="EnsureUnder"/> also checks for links before they load).
    /// </summary>
    public static bool IsUnder(string directory, string checkpointRoot)
    {
        if (string.IsNullOrEmpty(directory) || string.IsNullOrEmpty(checkpointRoot) || directory.Contains('\0', StringComparison.Ordinal))
        {
            return false;
        }

        var (root, full) = Normalise(directory, checkpointRoot);
        return Below(full, root);
    }

    /// <summary>Whether <paramref name="directory"/>, normalised, is the full path <paramref name="expected"/> (the path alone).</summary>
    public static bool IsExactly(string directory, string expected) =>
        !string.IsNullOrEmpty(directory) && !directory.Contains('\0', StringComparison.Ordinal) && expected.Length > 0
        && string.Equals(Full(directory), Full(expected), StringComparison.Ordinal);

    /// <summary>Both paths through <see cref="Full"/>.</summary>
    private static (string Root, string Full) Normalise(string directory, string checkpointRoot) => (Full(checkpointRoot), Full(directory));

    /// <summary>The path through <see cref="Path.GetFullPath(string)"/>, without a trailing separator.</summary>
    private static string Full(string path) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));

    /// <summary>Whether <paramref name="full"/> lies strictly below <paramref name="root"/>, on whole path components.</summary>
    private static bool Below(string full, string root) => full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal);
}

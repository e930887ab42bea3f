using DistClip.Files;

namespace DistClip.Data;

/// <summary>
/// What a path names, from stat(2) (following links) without opening it: opening a FIFO blocks
/// until a writer appears, and a device can read forever, so a dataset checks before it opens
/// (<see cref="FileStatus"/>, shared with the checkpoints).
/// </summary>
internal static class FileKind
{
    /// <summary>
    /// Null when <paramref name="path"/> is a regular file (or on a system without the shim, where
    /// the open that follows decides); otherwise what it is instead ("a directory", "a FIFO", ...),
    /// or "missing" when nothing is there.
    /// </summary>
    public static string? NotARegularFile(string path)
    {
        int type = FileStatus.OfPath(path, followLinks: true);
        if (type == FileStatus.Unknown)
        {
            return Directory.Exists(path) ? "a directory" : null;
        }

        return FileStatus.Describe(type, FileStatus.Regular);
    }
}

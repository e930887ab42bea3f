using System.Runtime.InteropServices;
using DistClip.Files;
using Microsoft.Win32.SafeHandles;

namespace DistClip.Checkpoints;

/// <summary>
/// What a name in a checkpoint is, from lstat(2) (links not followed), and the one way its files are
/// opened: only a regular file, never through a symbolic link, and never a FIFO (opening one waits
/// for a writer that may never come) or a device (which can read forever). A checkpoint directory is
/// shared storage that someone else can write to; a link there could point a resume at any file.
/// </summary>
/// <remarks>
/// The type comes from lstat and fstat through the runtime's own native shim (<see cref="FileStatus"/>,
/// shared with DistClip.Data's FileKind), since .NET exposes no file type beyond "directory". On Linux the file is then opened with O_NOFOLLOW | O_NONBLOCK and its type
/// checked again on the open descriptor, so a name swapped between the two checks is caught too.
/// </remarks>
internal static class CheckpointEntries
{
    /// <summary>Null when <paramref name="path"/> is a regular file itself; otherwise what it is ("a symbolic link", "a FIFO", "missing", ...).</summary>
    public static string? NotARegularFile(string path) => FileStatus.Describe(FileStatus.OfPath(path, followLinks: false), FileStatus.Regular);

    /// <summary>Null when <paramref name="path"/> is a directory itself (not a link to one); otherwise what it is.</summary>
    public static string? NotADirectory(string path) => FileStatus.Describe(FileStatus.OfPath(path, followLinks: false), FileStatus.DirectoryType);

    /// <summary>
    /// Opens <paramref name="name"/> in <paramref name="directory"/> for reading when it is a regular
    /// file, for <see cref="CheckpointVerifier"/> and <see cref="ResolvedCheckpoint.Open"/> alike.
    /// </summary>
    /// <exception cref="CorruptCheckpointException">It is missing or not a regular file; names it. Nothing else was opened.</exception>
    public static FileStream OpenRegular(string directory, string name, int bufferSize)
    {
        string path = Path.Combine(directory, name);
        if (NotARegularFile(path) is { } what)
        {
            throw NotRegular(directory, name, what);
        }
        if (!OperatingSystem.IsLinux())
        {
            // No O_NOFOLLOW value we can rely on: the lstat above is the check.
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize, FileOptions.SequentialScan);
        }

        int fd = Libc.OpenRetrying(path, Libc.ReadOnlyNoFollowNoBlock);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw errno == Libc.ELOOP
                ? NotRegular(directory, name, "a symbolic link")
                : new CorruptCheckpointException(directory, name, $"cannot be opened: {Marshal.GetPInvokeErrorMessage(errno)}");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            // Swapped for something else since the lstat above: refuse what was opened.
            if (FileStatus.Describe(FileStatus.OfDescriptor(fd), FileStatus.Regular) is { } opened)
            {
                throw NotRegular(directory, name, opened);
            }
            return new FileStream(handle, FileAccess.Read, bufferSize);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static CorruptCheckpointException NotRegular(string directory, string name, string what) =>
        new(directory, name, what == "missing" ? "missing" : $"is {what}, not a regular file; not opened");
}

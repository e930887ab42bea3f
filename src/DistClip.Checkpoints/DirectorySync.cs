using System.Runtime.InteropServices;

namespace DistClip.Checkpoints;

/// <summary>
/// fsync of a directory, so that the names created, renamed or removed in it survive a power loss.
/// Flushing a file's data does not make its directory entry durable; a rename is only durable once
/// the directory holding the new name is synced.
/// </summary>
/// <remarks>
/// .NET cannot do this itself: <c>File.OpenHandle</c> refuses directories on Unix (it fstat's the
/// descriptor and throws for a directory), so this calls libc <c>open</c>/<c>fsync</c>/<c>close</c> (<see cref="Libc"/>).
/// Windows offers no directory fsync to ordinary callers (NTFS journals the rename itself);
/// there, and on filesystems that answer EINVAL (some network and FUSE mounts), <see cref="TryFlush"/>
/// returns false and the caller logs it.
/// </remarks>
internal static class DirectorySync
{
    /// <summary>True when the directory was synced; false where the platform cannot.</summary>
    /// <exception cref="IOException">The directory could not be opened or the sync failed.</exception>
    public static bool TryFlush(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return false;
        }
        int fd = Libc.OpenRetrying(directory, Libc.ReadOnlyCloseOnExec);
        if (fd < 0)
        {
            throw Failure("open", directory);
        }
        try
        {
            int rc;
            do
            {
                rc = Libc.Fsync(fd);
            }
            while (rc < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
            if (rc < 0)
            {
                if (Marshal.GetLastPInvokeError() == Libc.EINVAL)
                {
                    return false; // the filesystem does not support syncing directories
                }
                throw Failure("fsync", directory);
            }
            return true;
        }
        finally
        {
            _ = Libc.Close(fd); // close after a successful fsync cannot lose data; its result is moot
        }
    }

    private static IOException Failure(string call, string directory)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{call} of directory {directory} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
    }
}

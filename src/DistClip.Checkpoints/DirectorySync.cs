using System.Reflection;
using System.Runtime.InteropServices;

namespace DistClip.Checkpoints;

/// <summary>
/// fsync of a directory, so that the names created, renamed or removed in it survive a power loss.
/// Flushing a file's data does not make its directory entry durable; a rename is only durable once
/// the directory holding the new name is synced.
/// </summary>
/// <remarks>
/// .NET cannot do this itself: <c>File.OpenHandle</c> refuses directories on Unix (it fstat's the
/// descriptor and throws for a directory), so this calls libc <c>open</c>/<c>fsync</c>/<c>close</c>.
/// Windows offers no directory fsync to ordinary callers (NTFS journals the rename itself);
/// there, and on filesystems that answer EINVAL (some network and FUSE mounts), <see cref="TryFlush"/>
/// returns false and the caller logs it.
/// </remarks>
internal static partial class DirectorySync
{
    private const int EINTR = 4;
    private const int EINVAL = 22;

    static DirectorySync() =>
        // "libc" alone may resolve to glibc's libc.so linker script (not loadable) or nothing at all;
        // name the real shared object per OS and let default probing handle the rest.
        NativeLibrary.SetDllImportResolver(typeof(DirectorySync).Assembly, ResolveLibc);

    /// <summary>True when the directory was synced; false where the platform cannot.</summary>
    /// <exception cref="IOException">The directory could not be opened or the sync failed.</exception>
    public static bool TryFlush(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return false;
        }
        int flags = OperatingSystem.IsLinux() ? 0x80000 /* O_RDONLY | O_CLOEXEC */ : 0; // no fd leaks into a concurrent fork
        int fd;
        do
        {
            fd = Open(directory, flags);
        }
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);
        if (fd < 0)
        {
            throw Failure("open", directory);
        }
        try
        {
            int rc;
            do
            {
                rc = Fsync(fd);
            }
            while (rc < 0 && Marshal.GetLastPInvokeError() == EINTR);
            if (rc < 0)
            {
                if (Marshal.GetLastPInvokeError() == EINVAL)
                {
                    return false; // the filesystem does not support syncing directories
                }
                throw Failure("fsync", directory);
            }
            return true;
        }
        finally
        {
            _ = Close(fd); // close after a successful fsync cannot lose data; its result is moot
        }
    }

    private static IOException Failure(string call, string directory)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{call} of directory {directory} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
    }

    private static IntPtr ResolveLibc(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != "libc")
        {
            return IntPtr.Zero;
        }
        string candidate = OperatingSystem.IsMacOS() ? "/usr/lib/libSystem.B.dylib" : "libc.so.6";
        return NativeLibrary.TryLoad(candidate, out IntPtr handle) ? handle : IntPtr.Zero;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}

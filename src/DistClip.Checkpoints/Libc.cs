using System.Reflection;
using System.Runtime.InteropServices;

namespace DistClip.Checkpoints;

/// <summary>
/// The few libc calls .NET does not offer: <c>open</c> with flags of our choosing (a directory to
/// fsync, a file that must not be a link or a FIFO), <c>fsync</c> and <c>close</c>. Unix only.
/// </summary>
internal static partial class Libc
{
    public const int EINTR = 4;
    public const int EINVAL = 22;
    public const int ELOOP = 40;

    /// <summary>O_RDONLY | O_CLOEXEC (Linux): no descriptor leaks into a concurrent fork.</summary>
    public static int ReadOnlyCloseOnExec => OperatingSystem.IsLinux() ? 0x80000 : 0;

    /// <summary>
    /// Linux's O_NOFOLLOW | O_NONBLOCK on top of <see cref="ReadOnlyCloseOnExec"/>: a symbolic link
    /// fails with ELOOP and a FIFO opens at once instead of waiting for a writer (O_NONBLOCK does
    /// nothing to a regular file). O_NOFOLLOW's value differs between architectures.
    /// </summary>
    public static int ReadOnlyNoFollowNoBlock => ReadOnlyCloseOnExec | 0x800
        | (RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x8000 : 0x20000);

    static Libc() =>
        // "libc" alone may resolve to glibc's libc.so linker script (not loadable) or nothing at all;
        // name the real shared object per OS and let default probing handle the rest.
        NativeLibrary.SetDllImportResolver(typeof(Libc).Assembly, Resolve);

    /// <summary>open(2), retried on EINTR; -1 with the error in <see cref="Marshal.GetLastPInvokeError"/>.</summary>
    public static int OpenRetrying(string path, int flags)
    {
        int fd;
        do
        {
            fd = Open(path, flags);
        }
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);
        return fd;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
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
    public static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);
}

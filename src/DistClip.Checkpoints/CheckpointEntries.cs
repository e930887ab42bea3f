using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace DistClip.Checkpoints;

/// <summary>
/// What a name in a checkpoint is, from lstat(2) (links not followed), and the one way its files are
/// opened: only a regular file, never through a symbolic link, and never a FIFO (opening one waits
/// for a writer that may never come) or a device (which can read forever). A checkpoint directory is
/// shared storage that someone else can write to; a link there could point a resume at any file.
/// </summary>
/// <remarks>
/// The type comes from the runtime's own native shim (libSystem.Native's <c>SystemNative_LStat</c> and
/// <c>SystemNative_FStat</c>, whose <c>FileStatus</c> layout and mode constants are .NET's, the same on
/// every Unix; DistClip.Data's FileKind reads them the same way), since .NET exposes no file type
/// beyond "directory". On Linux the file is then opened with O_NOFOLLOW | O_NONBLOCK and its type
/// checked again on the open descriptor, so a name swapped between the two checks is caught too.
/// </remarks>
internal static class CheckpointEntries
{
    // .NET's PAL constants (pal_io.h): the file type bits of FileStatus.Mode.
    private const int TypeMask = 0xF000;
    private const int Regular = 0x8000;
    private const int DirectoryType = 0x4000;
    private const int Fifo = 0x1000;
    private const int CharacterDevice = 0x2000;
    private const int BlockDevice = 0x6000;
    private const int SymbolicLink = 0xA000;
    private const int Socket = 0xC000;

    /// <summary>Null when <paramref name="path"/> is a regular file itself; otherwise what it is ("a symbolic link", "a FIFO", "missing", ...).</summary>
    public static string? NotARegularFile(string path) => Describe(LinkStatus(path), Regular);

    /// <summary>Null when <paramref name="path"/> is a directory itself (not a link to one); otherwise what it is.</summary>
    public static string? NotADirectory(string path) => Describe(LinkStatus(path), DirectoryType);

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
            if (Describe(Status(s => FStat(fd, s)), Regular) is { } opened)
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

    /// <summary>The file type bits from lstat, 0 when nothing is there, -1 where the shim is missing (not Unix).</summary>
    private static int LinkStatus(string path) => Status(s => LStat(path, s));

    private static int Status(Func<byte[], int> stat)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return -1;
        }
        var status = new byte[256]; // FileStatus is 120 bytes today
        try
        {
            return stat(status) == 0 ? BitConverter.ToInt32(status, 4) & TypeMask : 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
    }

    private static string? Describe(int type, int wanted) => type switch
    {
        _ when type == wanted => null,
        -1 => null, // no shim: the open that follows decides
        0 => "missing",
        Regular => "a regular file",
        DirectoryType => "a directory",
        SymbolicLink => "a symbolic link",
        Fifo => "a FIFO",
        CharacterDevice => "a character device",
        BlockDevice => "a block device",
        Socket => "a socket",
        _ => $"not a regular file (mode 0x{type:x})",
    };

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_LStat", SetLastError = true)]
    private static extern int LStat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] status);

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_FStat", SetLastError = true)]
    private static extern int FStat(IntPtr fd, byte[] status);
}

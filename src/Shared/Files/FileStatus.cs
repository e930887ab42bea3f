using System.Runtime.InteropServices;

namespace DistClip.Files;

/// <summary>
/// What a path or an open descriptor is, from stat(2), lstat(2) or fstat(2), without opening the path:
/// opening a FIFO blocks until a writer appears, and a device can read forever, so datasets and
/// checkpoints check first. Linked as source into DistClip.Data (<c>FileKind</c>) and
/// DistClip.Checkpoints (<c>CheckpointEntries</c>).
/// </summary>
/// <remarks>
/// .NET exposes no file type beyond "directory", so this calls the runtime's own native shim
/// (libSystem.Native's <c>SystemNative_Stat</c>, <c>SystemNative_LStat</c> and <c>SystemNative_FStat</c>),
/// whose <c>FileStatus</c> layout and mode constants are .NET's, the same on every Unix.
/// </remarks>
internal static class FileStatus
{
    // .NET's PAL constants (pal_io.h): the file type bits of FileStatus.Mode.
    public const int TypeMask = 0xF000;
    public const int Regular = 0x8000;
    public const int DirectoryType = 0x4000;
    public const int Fifo = 0x1000;
    public const int CharacterDevice = 0x2000;
    public const int BlockDevice = 0x6000;
    public const int SymbolicLink = 0xA000;
    public const int Socket = 0xC000;

    /// <summary>The type of what is left where the shim is missing (not Unix): the caller's open decides.</summary>
    public const int Unknown = -1;

    /// <summary>The type of nothing: the path does not exist.</summary>
    public const int Missing = 0;

    /// <summary>The file type bits of <paramref name="path"/>: stat(2) when <paramref name="followLinks"/>, else lstat(2).</summary>
    public static int OfPath(string path, bool followLinks) => Status(s => followLinks ? Stat(path, s) : LStat(path, s));

    /// <summary>The file type bits of an open descriptor, fstat(2).</summary>
    public static int OfDescriptor(IntPtr fd) => Status(s => FStat(fd, s));

    /// <summary>
    /// Null when <paramref name="type"/> is <paramref name="wanted"/> or <see cref="Unknown"/>; otherwise
    /// what it is, for a message ("missing", "a directory", "a symbolic link", "a FIFO", ...).
    /// </summary>
    public static string? Describe(int type, int wanted) => type switch
    {
        _ when type == wanted => null,
        Unknown => null,
        Missing => "missing",
        Regular => "a regular file",
        DirectoryType => "a directory",
        SymbolicLink => "a symbolic link",
        Fifo => "a FIFO",
        CharacterDevice => "a character device",
        BlockDevice => "a block device",
        Socket => "a socket",
        _ => $"not a regular file (mode 0x{type:x})",
    };

    private static int Status(Func<byte[], int> stat)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return Unknown;
        }

        var status = new byte[256]; // FileStatus is 120 bytes today
        try
        {
            return stat(status) == 0 ? BitConverter.ToInt32(status, 4) & TypeMask : Missing;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return Unknown;
        }
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", SetLastError = true)]
    private static extern int Stat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] status);

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_LStat", SetLastError = true)]
    private static extern int LStat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] status);

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_FStat", SetLastError = true)]
    private static extern int FStat(IntPtr fd, byte[] status);
}

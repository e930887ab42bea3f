using System.Runtime.InteropServices;

namespace DistClip.Data;

/// <summary>
/// What a path names, from stat(2) (following links) without opening it: opening a FIFO blocks
/// until a writer appears, and a device can read forever, so a dataset checks before it opens.
/// </summary>
/// <remarks>
/// Uses the runtime's own native shim (libSystem.Native's <c>SystemNative_Stat</c>, whose
/// <c>FileStatus</c> layout and mode constants are .NET's, the same on every Unix), since .NET
/// exposes no file type beyond "directory".
/// </remarks>
internal static class FileKind
{
    // .NET's PAL constants (pal_io.h): the file type bits of FileStatus.Mode.
    private const int TypeMask = 0xF000;
    private const int Regular = 0x8000;
    private const int DirectoryType = 0x4000;
    private const int Fifo = 0x1000;
    private const int CharacterDevice = 0x2000;
    private const int BlockDevice = 0x6000;
    private const int Socket = 0xC000;

    /// <summary>
    /// Null when <paramref name="path"/> is a regular file (or on a system without the shim, where
    /// the open that follows decides); otherwise what it is instead ("a directory", "a FIFO", ...),
    /// or "missing" when nothing is there.
    /// </summary>
    public static string? NotARegularFile(string path)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return System.IO.Directory.Exists(path) ? "a directory" : null;
        }

        var status = new byte[256]; // FileStatus is 120 bytes today
        int result;
        try
        {
            result = Stat(path, status);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return System.IO.Directory.Exists(path) ? "a directory" : null;
        }

        if (result != 0)
        {
            return "missing";
        }

        int mode = BitConverter.ToInt32(status, 4) & TypeMask;
        return mode switch
        {
            Regular => null,
            DirectoryType => "a directory",
            Fifo => "a FIFO",
            CharacterDevice => "a character device",
            BlockDevice => "a block device",
            Socket => "a socket",
            _ => $"not a regular file (mode 0x{mode:x})",
        };
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", SetLastError = true)]
    private static extern int Stat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] status);
}

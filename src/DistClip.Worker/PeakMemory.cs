using System.Globalization;

namespace DistClip.Worker;

/// <summary>This process's peak memory, as Linux reports it.</summary>
internal static class PeakMemory
{
    /// <summary>
    /// The peak resident set size in bytes: <c>VmHWM</c> from <c>/proc/self/status</c>, the kernel's
    /// high-water mark of this process's resident memory (libtorch's allocations included, which the
    /// .NET runtime's own counters do not see). 0 where there is no such file or line.
    /// </summary>
    public static long ResidentBytes()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    // "VmHWM:\t  421112 kB"
                    string[] parts = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    return parts.Length == 3 && parts[2] == "kB" && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long kib)
                        ? kib * 1024
                        : 0;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not Linux, or no /proc: report 0, as the field's contract says.
        }

        return 0;
    }
}

using System.Globalization;
using System.Text.RegularExpressions;

namespace DistClip.Coordinator.Launchers;

/// <summary>
/// The GPUs of this host that the local launcher may hand out, one per worker, counted without
/// libtorch (the coordinator never runs a tensor op, and loading CUDA here would take memory on every
/// GPU): the entries of <c>CUDA_VISIBLE_DEVICES</c> when the user set it (an empty value hides every
/// GPU), else one per entry of <c>/proc/driver/nvidia/gpus</c> (the NVIDIA driver makes a directory
/// per GPU it drives), else none. <see cref="Read"/> takes both as arguments so tests give it a fake
/// directory.
/// </summary>
/// <param name="Ids">What each worker may be given as its <c>CUDA_VISIBLE_DEVICES</c>: the user's
/// entries (indices or UUIDs such as <c>GPU-…</c>, <c>MIG-…</c>), or <c>0 … n-1</c>.</param>
/// <param name="Source">Where the count came from, for messages (<c>CUDA_VISIBLE_DEVICES=0,1</c>).</param>
public sealed partial record GpuInventory(IReadOnlyList<string> Ids, string Source)
{
    public const string VisibleDevicesVariable = "CUDA_VISIBLE_DEVICES";
    public const string DriverDirectory = "/proc/driver/nvidia/gpus";

    public int Count => Ids.Count;

    public static GpuInventory OfThisHost() =>
        Read(Environment.GetEnvironmentVariable(VisibleDevicesVariable), DriverDirectory);

    /// <param name="visibleDevices">The value of <c>CUDA_VISIBLE_DEVICES</c>, null when it is not set.</param>
    /// <param name="driverDirectory">Where the NVIDIA driver lists its GPUs.</param>
    public static GpuInventory Read(string? visibleDevices, string driverDirectory)
    {
        if (visibleDevices is not null)
        {
            // Set but empty hides every GPU from CUDA, as it would from the workers.
            string[] ids = visibleDevices.Trim().Length == 0 ? [] : visibleDevices.Split(',', StringSplitOptions.TrimEntries);
            return new GpuInventory(ids, ids.Length == 0 ? $"{VisibleDevicesVariable} is set but empty" : $"{VisibleDevicesVariable}={visibleDevices}");
        }

        if (!Directory.Exists(driverDirectory))
        {
            return new GpuInventory([], $"no {VisibleDevicesVariable} and no NVIDIA driver: {driverDirectory} does not exist");
        }

        int count = Directory.EnumerateFileSystemEntries(driverDirectory).Count();
        string[] indices = [.. Enumerable.Range(0, count).Select(i => i.ToString(CultureInfo.InvariantCulture))];
        return new GpuInventory(indices, $"{driverDirectory} lists {count}");
    }

    /// <summary>
    /// Whether <paramref name="id"/> can be a <c>CUDA_VISIBLE_DEVICES</c> entry: an index or a UUID.
    /// Nothing else is passed on, so an id is safe in a remote shell's command line.
    /// </summary>
    public static bool IsValidId(string id) => ValidId().IsMatch(id);

    [GeneratedRegex(@"^[A-Za-z0-9-]+\z")] // \z, not $: $ would let a trailing newline through
    private static partial Regex ValidId();
}

using System.Globalization;
using DistClip.Config;

namespace DistClip.Coordinator.Launchers;

/// <summary>
/// Which GPU each worker slot gets, as the <c>CUDA_VISIBLE_DEVICES</c> of its process, so that each
/// worker sees exactly one GPU and trains on it as <c>cuda:0</c>. Slot i of a host gets the i-th id
/// the user listed for that host (the coordinator's own <c>CUDA_VISIBLE_DEVICES</c> for local
/// workers, <c>gpus=</c> in a hostfile), else <c>i</c>. Only with device auto or cuda: with cpu the
/// workers' environment is left alone. What cannot give every worker its own GPU is refused here,
/// before any worker starts.
/// </summary>
public static class GpuPlacement
{
    /// <summary>Whether the device setting may put a worker on a GPU (auto picks CUDA where the worker sees one).</summary>
    public static bool UsesGpus(string device) => device is "auto" or "cuda";

    /// <summary>The local launcher's slots, on the GPUs of this host.</summary>
    /// <returns>The <c>CUDA_VISIBLE_DEVICES</c> of each slot, or null to leave the workers' environment alone.</returns>
    public static IReadOnlyList<string>? ForThisHost(string device, int workers, GpuInventory gpus)
    {
        if (!UsesGpus(device))
        {
            return null;
        }

        if (gpus.Count == 0)
        {
            // auto on a host without GPUs trains on the CPU, as it always did.
            return device == "cuda"
                ? throw new ConfigException("device", $"cuda needs a GPU for each of the {workers} workers, but this host has none ({gpus.Source}); use --device cpu")
                : null;
        }

        if (gpus.Ids.FirstOrDefault(id => !GpuInventory.IsValidId(id)) is { } bad)
        {
            throw new ConfigException(GpuInventory.VisibleDevicesVariable,
                $"'{bad}' is not a GPU index or UUID ({gpus.Source}); list GPUs separated by commas, e.g. 0,1 or GPU-<uuid>,GPU-<uuid>");
        }

        if (workers > gpus.Count)
        {
            string fix = device == "auto"
                ? $" (auto uses CUDA when this host has a GPU); ask for --workers {gpus.Count} or fewer, or use --device cpu to run {workers} workers on the CPU"
                : $"; ask for --workers {gpus.Count} or fewer, or use --device cpu";
            throw new ConfigException("workers",
                $"{workers} workers on this host but only {Gpus(gpus.Count)} ({gpus.Source}); with --device {device} each worker needs its own GPU{fix}");
        }

        string[] ids = [.. gpus.Ids.Take(workers)];
        if (ids.GroupBy(id => id).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new ConfigException(GpuInventory.VisibleDevicesVariable,
                $"lists GPU {twice.Key} twice ({gpus.Source}), which would give it to two workers; list each GPU once");
        }

        return ids;
    }

    /// <summary>The hostfile's slots, in slot order (host by host down the file), on each host's GPUs.</summary>
    /// <returns>The <c>CUDA_VISIBLE_DEVICES</c> of each slot, or null to leave the workers' environment alone.</returns>
    /// <remarks>
    /// Without <c>gpus=</c> the GPUs of a remote host cannot be counted before its workers start: a
    /// worker with device cuda that sees no GPU stops at start with exit 2, naming its CUDA_VISIBLE_DEVICES.
    /// </remarks>
    public static IReadOnlyList<string>? ForHosts(string device, IReadOnlyList<HostEntry> hosts)
    {
        if (!UsesGpus(device))
        {
            return null;
        }

        var slots = new List<string>();
        // A host named on several lines numbers its slots on, line after line, so that two lines
        // without gpus= never share a GPU; any id given twice on one host is refused below.
        var numbered = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var taken = new Dictionary<string, HashSet<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (var host in hosts)
        {
            if (host.Gpus is { } listed && host.Slots > listed.Count)
            {
                throw new ConfigException("hostfile",
                    $"{host.Host} has slots={host.Slots} but gpus= lists {Gpus(listed.Count)} ({string.Join(',', listed)}); with --device {device} " +
                    $"each worker needs its own GPU: list {host.Slots} GPUs, lower slots to {listed.Count}, or use --device cpu");
            }

            int first = numbered.GetValueOrDefault(host.Host);
            if (host.Gpus is null)
            {
                numbered[host.Host] = first + host.Slots;
            }

            if (!taken.TryGetValue(host.Host, out var used))
            {
                taken[host.Host] = used = [];
            }

            for (int i = 0; i < host.Slots; i++)
            {
                string id = host.Gpus?[i] ?? (first + i).ToString(CultureInfo.InvariantCulture);
                if (!used.Add(id))
                {
                    throw new ConfigException("hostfile", $"{host.Host} would give GPU {id} to two workers; give each of its lines its own gpus= list");
                }

                slots.Add(id);
            }
        }

        return slots;
    }

    private static string Gpus(int count) => count == 1 ? "1 GPU" : $"{count} GPUs";
}

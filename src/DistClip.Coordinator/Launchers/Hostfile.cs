using System.Globalization;
using DistClip.Config;

namespace DistClip.Coordinator.Launchers;

/// <summary>
/// One host of a hostfile: where <see cref="Slots"/> workers start over ssh. <see cref="Gpus"/> are the
/// GPU ids its slots get, in order (null: slot i gets GPU i); see <see cref="GpuPlacement"/>.
/// </summary>
public sealed record HostEntry(string Host, int Slots, int? Port, string? User, IReadOnlyList<string>? Gpus = null);

/// <summary>
/// An MPI-style hostfile: one host per line, <c>host slots=N [port=P] [user=U] [gpus=LIST]</c>;
/// <c>#</c> starts a comment. Slot k of the run is the k-th slot counting down the file, and becomes
/// the worker's preferred rank. <c>gpus=0,1,4,5</c> (indices or UUIDs) names the GPUs the host's slots
/// get, one each, as their CUDA_VISIBLE_DEVICES.
/// </summary>
public static class Hostfile
{
    public static IReadOnlyList<HostEntry> Parse(string path)
    {
        if (!File.Exists(path))
        {
            throw new ConfigException("hostfile", $"{path} does not exist");
        }

        var hosts = new List<HostEntry>();
        int lineNumber = 0;
        foreach (string raw in File.ReadLines(path))
        {
            lineNumber++;
            string line = raw.Split('#')[0].Trim();
            if (line.Length == 0)
            {
                continue;
            }

            string[] parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            int slots = 1;
            int? port = null;
            string? user = null;
            IReadOnlyList<string>? gpus = null;
            foreach (string part in parts.Skip(1))
            {
                string[] kv = part.Split('=', 2);
                string value = kv.Length == 2 ? kv[1] : throw new ConfigException("hostfile", $"{path}:{lineNumber}: '{part}' is not key=value");
                switch (kv[0])
                {
                    case "slots":
                        slots = int.TryParse(value, CultureInfo.InvariantCulture, out int s) && s > 0 ? s : throw new ConfigException("hostfile", $"{path}:{lineNumber}: slots must be a positive number, not '{value}'");
                        break;
                    case "port":
                        port = int.TryParse(value, CultureInfo.InvariantCulture, out int p) && p is > 0 and < 65536 ? p : throw new ConfigException("hostfile", $"{path}:{lineNumber}: '{value}' is not a port");
                        break;
                    case "user":
                        user = IsName(value) ? value : throw new ConfigException("hostfile", $"{path}:{lineNumber}: '{value}' is not a user name (letters, digits, '.', '_', '-'; not starting with '-')");
                        break;
                    case "gpus":
                        gpus = ParseGpus(value, $"{path}:{lineNumber}");
                        break;
                    default:
                        throw new ConfigException("hostfile", $"{path}:{lineNumber}: unknown key '{kv[0]}' (known: slots, port, user, gpus)");
                }
            }

            if (!IsHost(parts[0]))
            {
                throw new ConfigException("hostfile", $"{path}:{lineNumber}: '{parts[0]}' is not a host name or address (letters, digits, '.', '-', ':', '[', ']'; not starting with '-')");
            }

            hosts.Add(new HostEntry(parts[0], slots, port, user, gpus));
        }

        if (hosts.Count == 0)
        {
            throw new ConfigException("hostfile", $"{path} lists no host");
        }

        return hosts;
    }

    /// <summary>
    /// <c>gpus=0,1,4,5</c>: GPU indices or UUIDs (<c>GPU-…</c>, <c>MIG-…</c>), each once. They reach the
    /// remote shell, so nothing but letters, digits and '-' is accepted.
    /// </summary>
    private static string[] ParseGpus(string value, string where)
    {
        string[] ids = value.Split(',');
        if (!ids.All(GpuInventory.IsValidId))
        {
            throw new ConfigException("hostfile", $"{where}: gpus must list GPU indices or UUIDs separated by commas (gpus=0,1,4,5), not '{value}'");
        }

        if (ids.GroupBy(id => id).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new ConfigException("hostfile", $"{where}: gpus lists {twice.Key} twice; each slot needs its own GPU");
        }

        return ids;
    }

    /// <summary>Whether every host is this machine's loopback (then nothing needs to listen beyond it).</summary>
    public static bool AllLoopback(IEnumerable<HostEntry> hosts) =>
        hosts.All(h => h.Host is "localhost" || (System.Net.IPAddress.TryParse(h.Host, out var a) && System.Net.IPAddress.IsLoopback(a)));

    /// <summary>A host name, IPv4 or (bracketed) IPv6 address: nothing ssh could read as an option or a shell could expand.</summary>
    internal static bool IsHost(string host) =>
        host.Length is > 0 and <= 253 && host[0] != '-' && host.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or ':' or '[' or ']');

    /// <summary>A POSIX-portable user name.</summary>
    internal static bool IsName(string user) =>
        user.Length is > 0 and <= 64 && user[0] != '-' && user.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}

using System.Globalization;
using DistClip.Model;

namespace DistClip.Coordinator.Launchers;

/// <summary>One host of a hostfile: where <see cref="Slots"/> workers start over ssh.</summary>
public sealed record HostEntry(string Host, int Slots, int? Port, string? User);

/// <summary>
/// An MPI-style hostfile: one host per line, <c>host slots=N [port=P] [user=U]</c>; <c>#</c> starts a
/// comment. Slot k of the run is the k-th slot counting down the file, and becomes the worker's
/// preferred rank.
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
                        user = value;
                        break;
                    default:
                        throw new ConfigException("hostfile", $"{path}:{lineNumber}: unknown key '{kv[0]}' (known: slots, port, user)");
                }
            }

            hosts.Add(new HostEntry(parts[0], slots, port, user));
        }

        if (hosts.Count == 0)
        {
            throw new ConfigException("hostfile", $"{path} lists no host");
        }

        return hosts;
    }

    /// <summary>Whether every host is this machine's loopback (then nothing needs to listen beyond it).</summary>
    public static bool AllLoopback(IEnumerable<HostEntry> hosts) =>
        hosts.All(h => h.Host is "localhost" || (System.Net.IPAddress.TryParse(h.Host, out var a) && System.Net.IPAddress.IsLoopback(a)));
}

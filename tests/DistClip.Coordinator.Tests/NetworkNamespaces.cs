using System.Diagnostics;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Separate network stacks on one machine: each host is a network namespace with one veth link
/// into a switch namespace holding a bridge, and its own address in 10.213.0.0/24. Everything is
/// made by this object and removed by <see cref="DisposeAsync"/>, even after a failure; nothing
/// touches the machine's own namespace or addresses beyond the veth ends it creates.
/// </summary>
internal sealed class NetworkNamespaces : IAsyncDisposable
{
    private readonly string _prefix = $"dc{Environment.ProcessId % 10000}";
    private readonly List<string> _namespaces = [];

    public string Switch => _prefix + "-sw";

    /// <summary>Creates the switch and one namespace per host, host i at 10.213.0.(i+1).</summary>
    public static async Task<NetworkNamespaces> CreateAsync(params string[] hosts)
    {
        var net = new NetworkNamespaces();
        try
        {
            await net.Ip("netns", "add", net.Switch);
            net._namespaces.Add(net.Switch);
            await net.Ip("-n", net.Switch, "link", "add", "br0", "type", "bridge");
            await net.Ip("-n", net.Switch, "link", "set", "br0", "up");
            for (int i = 0; i < hosts.Length; i++)
            {
                string ns = net.Namespace(hosts[i]);
                await net.Ip("netns", "add", ns);
                net._namespaces.Add(ns);
                await net.Ip("-n", ns, "link", "set", "lo", "up");
                // The pair is made inside the host's namespace, and its far end moved to the switch.
                await net.Ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", net.Port(hosts[i]));
                await net.Ip("-n", ns, "link", "set", net.Port(hosts[i]), "netns", net.Switch);
                await net.Ip("-n", ns, "addr", "add", $"{Address(i)}/24", "dev", "eth0");
                await net.Ip("-n", ns, "link", "set", "eth0", "up");
                await net.Ip("-n", net.Switch, "link", "set", net.Port(hosts[i]), "master", "br0");
                await net.Ip("-n", net.Switch, "link", "set", net.Port(hosts[i]), "up");
            }

            return net;
        }
        catch
        {
            await net.DisposeAsync();
            throw;
        }
    }

    public static string Address(int index) => $"10.213.0.{index + 1}";

    public string Namespace(string host) => $"{_prefix}-{host}";

    /// <summary>The switch-side end of a host's link: taking it down cuts the host off.</summary>
    public string Port(string host) => $"{_prefix}{host}p";

    public Task CutAsync(string host) => Ip("-n", Switch, "link", "set", Port(host), "down");

    /// <summary>A process started inside a host's namespace.</summary>
    public ProcessStartInfo StartInfo(string host, string file, params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "netns", "exec", Namespace(host), file }.Concat(args))
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        return psi;
    }

    private async Task Ip(params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardError = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        string err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"ip {string.Join(' ', args)} failed: {err}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (string ns in Enumerable.Reverse(_namespaces))
        {
            // Kill whatever still runs in it, then remove it (its veth ends go with it).
            var pids = Process.Start(new ProcessStartInfo("ip", ["netns", "pids", ns]) { RedirectStandardOutput = true, UseShellExecute = false })!;
            string list = await pids.StandardOutput.ReadToEndAsync();
            await pids.WaitForExitAsync();
            foreach (string pid in list.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                try
                {
                    Process.GetProcessById(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture)).Kill(entireProcessTree: true);
                }
                catch (ArgumentException)
                {
                    // Already gone.
                }
            }

            using var del = Process.Start(new ProcessStartInfo("ip", ["netns", "del", ns]) { UseShellExecute = false, RedirectStandardError = true })!;
            await del.WaitForExitAsync();
        }
    }
}

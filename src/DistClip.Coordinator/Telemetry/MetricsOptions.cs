using System.Net;
using DistClip.Telemetry;

namespace DistClip.Coordinator.Telemetry;

/// <summary>
/// Where the coordinator serves <c>/metrics</c>: <c>--metrics-port N</c> (serve: 9464, the port a
/// cluster's monitors expect; launch: 0, a free one, found through the run's targets file) and
/// <c>--metrics-bind ADDRESS</c> (launch: 127.0.0.1; serve: its <c>--bind</c> address, else every
/// interface). Taken off the command line before the run's own settings are read.
/// </summary>
internal sealed record MetricsOptions(IPAddress Bind, int Port, string AdvertiseHost)
{
    public const int ServeDefaultPort = 9464;

    public static readonly string[] Help =
    [
        $"  --metrics-port N     Prometheus /metrics over HTTP/1.1 (serve: {ServeDefaultPort}; launch: 0, a free port; the run dir's prometheus-targets.json lists every endpoint)",
        "  --metrics-bind ADDR  address of the metrics port (launch: 127.0.0.1; serve: --bind, else 0.0.0.0)",
    ];

    /// <summary>Removes the metrics options from <paramref name="args"/>; reads (without removing) <c>--bind</c> and <c>--advertise-host</c>.</summary>
    /// <exception cref="FormatException">A value that is not a port or an address.</exception>
    public static (MetricsOptions Options, string[] Remaining) Take(string[] args, bool serve)
    {
        var rest = new List<string>();
        int port = serve ? ServeDefaultPort : 0;
        IPAddress? bind = null;
        IPAddress? serveBind = null;
        string? advertise = null;
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            int eq = arg.IndexOf('=', StringComparison.Ordinal);
            string name = eq >= 0 ? arg[..eq] : arg;
            string Value() => eq >= 0 ? arg[(eq + 1)..] : i + 1 < args.Length ? args[i + 1] : throw new FormatException($"{name} needs a value");
            switch (name)
            {
                case "--metrics-port":
                    port = MetricsServer.ParsePort(Value());
                    i += eq >= 0 ? 0 : 1;
                    continue;
                case "--metrics-bind":
                    string value = Value();
                    bind = IPAddress.TryParse(value, out var a) ? a : throw new FormatException($"--metrics-bind: '{value}' is not an IP address");
                    i += eq >= 0 ? 0 : 1;
                    continue;
                case "--bind" when serve && IPAddress.TryParse(Value(), out var b):
                    serveBind = b;
                    break;
                case "--advertise-host":
                    advertise = Value();
                    break;
            }

            rest.Add(arg);
        }

        bind ??= serve ? serveBind ?? IPAddress.Any : IPAddress.Loopback;
        string host = IPAddress.IsLoopback(bind) ? bind.ToString() : advertise ?? Dns.GetHostName();
        return (new MetricsOptions(bind, port, host), [.. rest]);
    }
}

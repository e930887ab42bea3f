using System.Globalization;
using System.Net;
using DistClip.Collectives.Grpc;
using DistClip.Tls;
using DistClip.Training.Faults;

namespace DistClip.Worker;

/// <summary>
/// <c>worker --coordinator URL [--preferred-rank N] [--secret-file F] [--bind ADDRESS] [--port N] [--advertise-host HOST] [--metrics-port N] [--metrics-bind ADDRESS] [--link direct|grpc] [--tls-dir DIR | --tls-cert F --tls-key F --tls-ca F]</c>.
/// The secret comes from the file or from DISTCLIP_SECRET; the preferred rank defaults to
/// Kubernetes' JOB_COMPLETION_INDEX when set. The metrics port defaults to 0 (a free one): several
/// workers share a host (one per device), and the coordinator's targets file says where each is.
/// </summary>
public sealed record WorkerOptions(Uri Coordinator, int PreferredRank, string? SecretFile, IPAddress Bind, int Port, string AdvertiseHost)
{
    /// <summary>How long the first join keeps retrying a coordinator that is not up yet (a pod started before it).</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Where Prometheus scrapes this worker (HTTP/1.1, on <see cref="MetricsBind"/>); 0 takes a free port.</summary>
    public int MetricsPort { get; init; }

    /// <summary>
    /// The metrics port's address: loopback unless told, even when <see cref="Bind"/> is 0.0.0.0 for
    /// peers, since metrics describe the run to whoever can read them (the chart passes 0.0.0.0).
    /// </summary>
    public IPAddress MetricsBind { get; init; } = IPAddress.Loopback;

    /// <summary>The link stack of this worker's collectives (<c>--link direct|grpc</c>).</summary>
    public LinkStack Link { get; init; } = LinkStack.Direct;

    /// <summary>
    /// The run's TLS material (<c>--tls-dir</c> or the three files), checked before the worker starts:
    /// the coordinator is reached over HTTPS and the links speak TLS, each trusting only the run's CA
    /// and presenting this worker's certificate. Null: h2c.
    /// </summary>
    public RunTls? Tls { get; init; }

    /// <summary>Faults to inject, for tests (<c>DISTCLIP_FAULTS</c>, see <see cref="Worker.Faults"/>); none by default.</summary>
    public FaultPlan Faults { get; init; } = FaultPlan.None;

    public static WorkerOptions Parse(string[] args)
    {
        Uri? coordinator = null;
        int preferred = int.TryParse(Environment.GetEnvironmentVariable("JOB_COMPLETION_INDEX"), CultureInfo.InvariantCulture, out int index) ? index : -1;
        string? secretFile = null;
        var bind = IPAddress.Loopback;
        int port = 0;
        string? advertise = null;
        var joinTimeout = TimeSpan.FromSeconds(60);
        int metricsPort = 0;
        var metricsBind = IPAddress.Loopback;
        var link = LinkStack.Direct;
        string? tlsDir = null, tlsCert = null, tlsKey = null, tlsCa = null;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            string value = i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{name} needs a value");
            switch (name)
            {
                case "--coordinator":
                    coordinator = new Uri(value.Contains("://", StringComparison.Ordinal) ? value : "scheme://" + value);
                    break;
                case "--preferred-rank":
                    preferred = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--secret-file":
                    secretFile = value;
                    break;
                case "--bind":
                    bind = IPAddress.Parse(value);
                    break;
                case "--port":
                    port = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--advertise-host":
                    advertise = value;
                    break;
                case "--join-timeout":
                    joinTimeout = TimeSpan.FromSeconds(double.Parse(value, CultureInfo.InvariantCulture));
                    break;
                case "--metrics-port":
                    metricsPort = Telemetry.MetricsServer.ParsePort(value);
                    break;
                case "--metrics-bind":
                    metricsBind = IPAddress.Parse(value);
                    break;
                case "--link":
                    link = value switch
                    {
                        "direct" => LinkStack.Direct,
                        "grpc" => LinkStack.Grpc,
                        _ => throw new ArgumentException($"--link: '{value}' is not direct or grpc"),
                    };
                    break;
                case "--tls-dir":
                    tlsDir = value;
                    break;
                case "--tls-cert":
                    tlsCert = value;
                    break;
                case "--tls-key":
                    tlsKey = value;
                    break;
                case "--tls-ca":
                    tlsCa = value;
                    break;
                default:
                    throw new ArgumentException($"unknown option {name}");
            }
        }

        if (coordinator is null)
        {
            throw new ArgumentException("--coordinator HOST:PORT is required");
        }

        var tls = RunTls.FromOptions(tlsDir, tlsCert, tlsKey, tlsCa);
        if (coordinator.Scheme == "scheme")
        {
            coordinator = new UriBuilder(coordinator) { Scheme = tls is null ? "http" : "https" }.Uri;
        }
        else if (tls is not null && coordinator.Scheme != "https")
        {
            tls.Dispose();
            throw new ArgumentException($"--coordinator: {coordinator} is not https, but TLS is on");
        }

        // Peers must reach this worker: loopback when bound to loopback, else the host's name.
        advertise ??= IPAddress.IsLoopback(bind) ? bind.ToString() : Dns.GetHostName();
        return new WorkerOptions(coordinator, preferred, secretFile, bind, port, advertise)
        {
            MetricsPort = metricsPort,
            MetricsBind = metricsBind,
            JoinTimeout = joinTimeout,
            Link = link,
            Tls = tls,
            Faults = Worker.Faults.FromEnvironment(),
        };
    }
}

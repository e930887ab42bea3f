using System.Net;
using DistClip.Config;
using DistClip.Config.Settings;
using DistClip.Control;
using DistClip.Tls;

namespace DistClip.Coordinator.Cli;

/// <summary>
/// Where the coordinator itself listens: options of the process, not of the run (so they are not in
/// a JSON config or the chart's run config). Declared like the run's settings, read in the same pass.
/// </summary>
public sealed record CoordinatorOptions
{
    /// <summary>The port <c>serve</c> listens on unless told; the one the chart's Service points at.</summary>
    public const int ServeDefaultPort = 29400;

    /// <summary>The metrics port <c>serve</c> uses unless told: the one a cluster's monitors expect.</summary>
    public const int ServeDefaultMetricsPort = 9464;

    [Setting("serve: address the control plane listens on", DefaultDoc = "0.0.0.0")]
    public string? Bind { get; init; }

    [Setting("serve: port the control plane listens on; 0 = a free one", Min = 0, Max = 65535, DefaultDoc = "29400")]
    public int? Port { get; init; }

    [Setting("serve: file holding the run's join secret (else DISTCLIP_SECRET, else a new one written to the run dir)")]
    public string? SecretFile { get; init; }

    [Setting("Prometheus /metrics over HTTP/1.1; 0 = a free port (the run dir's prometheus-targets.json lists every endpoint)",
        Min = 0, Max = 65535, DefaultDoc = "launch: 0; serve: 9464")]
    public int? MetricsPort { get; init; }

    /// <summary>
    /// Where /metrics listens. Loopback unless told: metrics tell a stranger about the run (its hosts,
    /// progress and memory), so they are offered beyond this host only on purpose; the chart passes
    /// 0.0.0.0 for its Service and monitors.
    /// </summary>
    [Setting("address of the metrics port (0.0.0.0 for a Prometheus on another host)", DefaultDoc = "127.0.0.1")]
    public string? MetricsBind { get; init; }

    /// <summary>
    /// TLS on both planes (README, "Security"). Off by default for launch: its workers talk over
    /// loopback, where encryption protects nothing and costs CPU on the gradient path.
    /// </summary>
    [Setting("launch: 'auto' makes a run-local CA and a certificate per worker (under the run dir) and turns TLS on for both planes",
        Choices = ["off", "auto"], DefaultDoc = "off")]
    public string? Tls { get; init; }

    [Setting("directory holding ca.pem, cert.pem and key.pem (or a Kubernetes TLS Secret's ca.crt, tls.crt, tls.key): TLS on both planes")]
    public string? TlsDir { get; init; }

    [Setting("PEM certificate of this process (with --tls-key and --tls-ca)")]
    public string? TlsCert { get; init; }

    [Setting("PEM private key of --tls-cert")]
    public string? TlsKey { get; init; }

    [Setting("PEM CA certificate: the only root trusted, and every peer (workers included) must present a certificate it issued")]
    public string? TlsCa { get; init; }

    /// <summary>The options only <c>serve</c> takes (launch starts its own workers and picks its own port).</summary>
    public static readonly IReadOnlySet<string> ServeOnly = new HashSet<string> { "bind", "port", "secret-file" };

    /// <summary>The options only <c>launch</c> takes (serve's workers are started elsewhere, with certificates of their own).</summary>
    public static readonly IReadOnlySet<string> LaunchOnly = new HashSet<string> { "tls" };
}

/// <summary>A parsed <c>coordinator launch|serve</c> command line: the run's settings and the process's own.</summary>
/// <param name="Secret">The join secret from <c>--secret-file</c> or DISTCLIP_SECRET; null = generate one.</param>
public sealed record CoordinatorCommand(bool Serve, RunConfig Run, IPAddress Bind, int Port, string? Secret, IPAddress MetricsBind, int MetricsPort)
{
    /// <summary>The TLS material of <c>--tls-dir</c> or <c>--tls-cert/--tls-key/--tls-ca</c>, checked; null = none given.</summary>
    public RunTls? Tls { get; init; }

    /// <summary>Where <see cref="Tls"/> came from, as a worker's <c>--tls-dir</c> or three files (launch passes it on to its workers).</summary>
    public IReadOnlyList<string> TlsArguments { get; init; } = [];

    /// <summary><c>launch --tls auto</c>: generate a run-local CA and certificates.</summary>
    public bool TlsAuto { get; init; }

    /// <summary>
    /// Reads the whole command line in one pass: <c>--config FILE</c> (a JSON object of run settings,
    /// applied first), the run's settings and the coordinator's own options, each
    /// <c>--name value</c> or <c>--name=value</c>. Anything else is refused by name.
    /// </summary>
    public static CoordinatorCommand Parse(IReadOnlyList<string> args, bool serve)
    {
        var run = new List<KeyValuePair<string, string>>();
        var own = new CoordinatorOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                throw new ConfigException(arg, $"unexpected argument '{arg}'; settings are --name value");
            }

            string name = arg[2..];
            string? value = null;
            int eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            else if (i + 1 < args.Count)
            {
                value = args[++i];
            }

            if (value is null)
            {
                throw new ConfigException(name, "needs a value");
            }

            if (SettingTable<CoordinatorOptions>.Find(name) is { } option)
            {
                if (!serve && CoordinatorOptions.ServeOnly.Contains(name))
                {
                    throw new ConfigException(option.JsonName, "is a 'coordinator serve' option; launch starts its own workers and listens where they reach it");
                }

                if (serve && CoordinatorOptions.LaunchOnly.Contains(name))
                {
                    throw new ConfigException(option.JsonName, "is a 'coordinator launch' option; serve's workers are started elsewhere, give it --tls-dir or the --tls-* files");
                }

                own = SettingTable<CoordinatorOptions>.Apply(own, option, value);
            }
            else if (name == "config" || SettingTable<RunConfig>.Find(name) is not null)
            {
                run.Add(new(name, value));
            }
            else
            {
                throw new ConfigException(name, $"unknown setting; run 'coordinator {(serve ? "serve" : "launch")} --help'");
            }
        }

        var bind = Address("bind", own.Bind) ?? IPAddress.Any;
        var metricsBind = Address("metrics_bind", own.MetricsBind) ?? IPAddress.Loopback;
        string? secret = RunSecret.Load(null);
        if (own.SecretFile is { } file)
        {
            if (!File.Exists(file))
            {
                throw new ConfigException("secret_file", $"{file} does not exist");
            }

            try
            {
                secret = RunSecret.Load(file);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                throw new ConfigException("secret_file", e.Message);
            }
        }

        bool tlsAuto = own.Tls == "auto";
        RunTls? tls;
        try
        {
            tls = RunTls.FromOptions(own.TlsDir, own.TlsCert, own.TlsKey, own.TlsCa);
        }
        catch (TlsOptionException e)
        {
            throw new ConfigException(e.Option, e.Detail);
        }

        if (tls is not null && tlsAuto)
        {
            tls.Dispose();
            throw new ConfigException("--tls", "'auto' generates the certificates; give it or --tls-dir/--tls-cert, not both");
        }

        IReadOnlyList<string> tlsArguments = own.TlsDir is { } dir ? ["--tls-dir", Path.GetFullPath(dir)]
            : tls is null ? []
            : ["--tls-cert", Path.GetFullPath(own.TlsCert!), "--tls-key", Path.GetFullPath(own.TlsKey!), "--tls-ca", Path.GetFullPath(own.TlsCa!)];
        return new CoordinatorCommand(serve, RunConfig.FromArguments(run), bind, own.Port ?? (serve ? CoordinatorOptions.ServeDefaultPort : 0),
            secret, metricsBind, own.MetricsPort ?? (serve ? CoordinatorOptions.ServeDefaultMetricsPort : 0))
        {
            Tls = tls,
            TlsArguments = tlsArguments,
            TlsAuto = tlsAuto,
        };
    }

    /// <summary>The host name the metrics endpoint is advertised under (loopback stays loopback).</summary>
    public string MetricsHost => IPAddress.IsLoopback(MetricsBind) ? MetricsBind.ToString() : Run.AdvertiseHost ?? Dns.GetHostName();

    private static IPAddress? Address(string field, string? text) =>
        text is null ? null
        : IPAddress.TryParse(text, out var address) ? address
        : throw new ConfigException(field, $"'{text}' is not an IP address");

    public static void PrintHelp(TextWriter output, bool serve)
    {
        output.WriteLine(serve
            ? "usage: coordinator serve [--bind ADDRESS] [--port N] [--secret-file FILE] [--tls-dir DIR | --tls-cert F --tls-key F --tls-ca F] [--config FILE] [--SETTING VALUE ...]"
            : "usage: coordinator launch [--tls auto | --tls-dir DIR | --tls-cert F --tls-key F --tls-ca F] [--config FILE] [--SETTING VALUE ...]");
        output.WriteLine();
        output.WriteLine(serve
            ? "Runs the coordinator of a run whose workers are started elsewhere (Kubernetes, ssh, SLURM)."
            : "Trains a CLIP model with N worker processes on this machine; writes <run dir>/summary.json.");
        output.WriteLine("Run settings (a --config FILE is a JSON object of them in snake_case; the command line overrides it):");
        foreach (string line in SettingTable<RunConfig>.HelpLines())
        {
            output.WriteLine(line);
        }

        output.WriteLine("Coordinator options:");
        var options = SettingTable<CoordinatorOptions>.Settings;
        foreach (string line in SettingTable<CoordinatorOptions>.HelpLines().Where((_, i) => serve ? !CoordinatorOptions.LaunchOnly.Contains(options[i].Name) : !CoordinatorOptions.ServeOnly.Contains(options[i].Name)))
        {
            output.WriteLine(line);
        }
    }
}

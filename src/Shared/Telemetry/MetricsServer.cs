using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace DistClip.Telemetry;

/// <summary>
/// A program's Prometheus endpoint: <c>GET /metrics</c> over HTTP/1.1 on a port of its own (the
/// gRPC ports speak h2c only). The libraries emit through <c>System.Diagnostics.Metrics</c> under
/// the meters named here and know nothing of OpenTelemetry; this is the one place that subscribes.
/// Compiled into both programs (coordinator and worker) from <c>src/Shared</c>.
/// </summary>
internal sealed class MetricsServer : IAsyncDisposable
{
    /// <summary>Every DistClip meter; a program exports those it creates and ignores the rest.</summary>
    public static readonly string[] Meters =
        ["DistClip.Training", "DistClip.Collectives", "DistClip.Coordinator", "DistClip.Data", "DistClip.Checkpoints"];

    public const string Path = "/metrics";

    private readonly WebApplication _app;

    private MetricsServer(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>Where Prometheus scrapes this process, e.g. <c>http://127.0.0.1:41235/metrics</c>.</summary>
    public Uri Address { get; }

    /// <summary><c>host:port</c> of <see cref="Address"/>, as a Prometheus target names it.</summary>
    public string Target => Address.Authority;

    /// <param name="serviceName">The <c>service.name</c> resource (Prometheus' <c>target_info</c>).</param>
    /// <param name="port">0 takes a free port; the bound one is in <see cref="Address"/>.</param>
    /// <param name="advertiseHost">The host name others use to reach this process.</param>
    /// <exception cref="MetricsPortException">The port cannot be bound (in use, or not permitted).</exception>
    public static async Task<MetricsServer> StartAsync(string serviceName, IPAddress bind, int port, string advertiseHost, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.Listen(bind, port, listen => listen.Protocols = HttpProtocols.Http1);
            kestrel.AddServerHeader = false;
        });
        // The program owns shutdown (SIGTERM, Ctrl+C): /metrics stays up until the program disposes
        // it, rather than stopping at the signal while the run still winds down.
        builder.Services.AddSingleton<IHostLifetime, ProgramOwnedLifetime>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName, serviceVersion: null, serviceInstanceId: $"{Dns.GetHostName()}-{Environment.ProcessId}"))
            .WithMetrics(metrics => metrics
                .AddMeter(Meters)
                // process.memory.usage (resident set), process.memory.virtual and process.cpu.time.
                .AddProcessInstrumentation()
                // Prometheus reserves a _count suffix for histograms and summaries (promtool's lint
                // refuses process_cpu_count); the CPU count is static, thread and descriptor counts are noise here.
                .AddView("process.cpu.count", MetricStreamConfiguration.Drop)
                .AddView("process.thread.count", MetricStreamConfiguration.Drop)
                .AddView("process.unix.file_descriptor.count", MetricStreamConfiguration.Drop)
                .AddPrometheusExporter());
        var app = builder.Build();
        app.MapPrometheusScrapingEndpoint(Path);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new MetricsPortException($"cannot listen for Prometheus on {bind}:{port} ({e.Message}); choose another --metrics-port, or 0 for a free one", e);
        }

        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        int boundPort = new Uri(bound).Port;
        var address = new UriBuilder("http", advertiseHost, boundPort, Path).Uri;
        return new MetricsServer(app, address);
    }

    /// <summary>Reads <c>--metrics-port N</c> (0: a free port).</summary>
    public static int ParsePort(string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int port) && port <= 65535
            ? port
            : throw new FormatException($"--metrics-port: '{value}' is not a port (0 to 65535; 0 takes a free one)");

    public async ValueTask DisposeAsync()
    {
        // A bounded drain: a scrape in flight must not hold a stopping program.
        using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        await _app.StopAsync(drain.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>A host lifetime that leaves signals to the program (the default one stops the host on SIGTERM).</summary>
internal sealed class ProgramOwnedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>The metrics port could not be bound.</summary>
internal sealed class MetricsPortException(string message, Exception inner) : Exception(message, inner);

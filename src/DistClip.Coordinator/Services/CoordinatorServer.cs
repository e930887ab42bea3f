using System.Net;
using DistClip.Coordinator.Runs;
using DistClip.Coordinator.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Services;

/// <summary>
/// The coordinator's gRPC server for the control plane: h2c, or HTTPS (h2, mutual TLS) with the run's TLS material. Tensors never come here. It also keeps
/// the run's Prometheus targets file and its <c>DistClip.Coordinator</c> instruments (exported by
/// the program's metrics endpoint, a port of its own).
/// </summary>
public sealed class CoordinatorServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly PrometheusTargets _targets;

    private CoordinatorServer(WebApplication app, Uri address, PrometheusTargets targets)
    {
        _app = app;
        Address = address;
        _targets = targets;
    }

    /// <summary>Where workers reach the coordinator, e.g. <c>http://127.0.0.1:40123/</c>.</summary>
    public Uri Address { get; }

    /// <param name="tls">The run's TLS material: HTTPS with a client certificate from the run's CA required of every caller; null = h2c.</param>
    public static async Task<CoordinatorServer> StartAsync(
        Membership run, IPAddress bind, int port, string advertiseHost, CancellationToken ct, DistClip.Tls.RunTls? tls = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.Listen(bind, port, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                if (tls is not null)
                {
                    // The data plane's server options exactly: one trust decision for both planes.
                    // A stranger's handshake gets no longer than its request headers would, and
                    // counts among Kestrel's capped connections like any other.
                    listen.UseHttps(new TlsHandshakeCallbackOptions
                    {
                        OnConnection = _ => ValueTask.FromResult(tls.ServerOptions()),
                        HandshakeTimeout = ControlPlaneLimits.RequestHeadersTimeout,
                    });
                }
            });
            kestrel.AddServerHeader = false;
            ControlPlaneLimits.Apply(kestrel.Limits, run.Settings.WorldSize);
        });
        builder.Services.AddSingleton(run);
        builder.Services.AddSingleton(_ => new PrometheusTargets(run.Settings.RunDirectory, run.Settings.RunId,
            PrometheusTargets.CoordinatorTarget, run.Logger));
        builder.Services.AddSingleton<CoordinatorMetrics>();
        // grpc.health.v1 for Kubernetes probes (the kubelet sends no secret; the gate and the interceptor
        // let its Check through, not Watch, a stream a stranger could hold open).
        // With no registered check the service answers Unknown; this one says the coordinator is up.
        builder.Services.AddGrpcHealthChecks().AddCheck("coordinator", () => HealthCheckResult.Healthy("coordinating the run"));
        builder.Services.AddGrpc(grpc =>
        {
            grpc.Interceptors.Add<SecretInterceptor>(run.Settings.Secret);
            grpc.MaxReceiveMessageSize = ControlPlaneLimits.MaxOtherMessageBytes;
            // Nothing but a status goes to a caller: an exception's text is for our log, not for strangers.
            grpc.EnableDetailedErrors = false;
            // No worker compresses; with no provider a compressed message is refused, never inflated.
            grpc.CompressionProviders.Clear();
        }).AddServiceOptions<RunControlService>(grpc => grpc.MaxReceiveMessageSize = ControlPlaneLimits.MaxRunControlMessageBytes);
        var app = builder.Build();
        // Before routing and gRPC: a call without the secret is refused from its headers, its body unread.
        app.UseSecretGate(run.Settings.Secret);
        app.MapGrpcService<RunControlService>();
        app.MapGrpcHealthChecksService();
        // Created now, not on first use: the instruments exist before any worker joins.
        var targets = app.Services.GetRequiredService<PrometheusTargets>();
        app.Services.GetRequiredService<CoordinatorMetrics>();
        await app.StartAsync(ct).ConfigureAwait(false);
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        var uri = new Uri(bound);
        return new CoordinatorServer(app, new UriBuilder(uri) { Host = advertiseHost }.Uri, targets);
    }

    public async ValueTask DisposeAsync()
    {
        _targets.Clear();
        // Drain briefly: a worker cut off from the network keeps its heartbeat stream "open" forever.
        using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        await _app.StopAsync(drain.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

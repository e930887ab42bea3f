using System.Security.Cryptography;
using DistClip.Collectives;
using DistClip.Collectives.Grpc;
using DistClip.Config;
using DistClip.Control;
using DistClip.Control.V1;
using DistClip.Model;
using DistClip.Telemetry;
using DistClip.Training;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;

namespace DistClip.Worker;

/// <summary>
/// A worker process: serves its collectives endpoint, joins the run, trains each generation it is
/// assigned, and joins again after an abort until the coordinator says the run is over.
/// </summary>
public sealed partial class WorkerHost(WorkerOptions options, string secret, ILoggerFactory loggers)
{
    private readonly ILogger _logger = loggers.CreateLogger("DistClip.Worker");

    public async Task<int> RunAsync(CancellationToken ct)
    {
        using var channel = GrpcChannel.ForAddress(options.Coordinator, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 16 << 20,
            MaxSendMessageSize = 16 << 20,
            HttpHandler = new SocketsHttpHandler
            {
                // With TLS: this worker's certificate, and the coordinator's checked against the run's CA alone.
                SslOptions = options.Tls?.ClientOptions(options.Coordinator.DnsSafeHost) ?? new(),
                // The heartbeat stream and the join/report calls share one connection; pings notice a
                // coordinator that vanished without closing it.
                KeepAlivePingDelay = TimeSpan.FromSeconds(10),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                // An unreachable coordinator must end in an error, not an endless connect.
                ConnectTimeout = TimeSpan.FromSeconds(15),
                EnableMultipleHttp2Connections = true,
            },
        });
        var client = new RunControl.RunControlClient(channel.Intercept(metadata =>
        {
            metadata.Add(RunSecret.Header, secret);
            return metadata;
        }));

        await using var endpoint = await GrpcCollectiveEndpoint.StartAsync(
            new GrpcTransportOptions { Secret = secret, ListenAddress = options.Bind, Port = options.Port, Tls = options.Tls }.WithLink(options.Link), loggers, cancellationToken: ct).ConfigureAwait(false);
        var advertised = new UriBuilder(endpoint.Address) { Host = options.AdvertiseHost }.Uri;
        LogEndpoint(_logger, advertised, options.Link.ToString().ToLowerInvariant());
        await using var metrics = await MetricsServer.StartAsync("distclip-worker", options.MetricsBind, options.MetricsPort,
            System.Net.IPAddress.IsLoopback(options.MetricsBind) ? options.MetricsBind.ToString() : options.AdvertiseHost, ct).ConfigureAwait(false);
        LogMetrics(_logger, metrics.Address);
        string workerId = $"{Environment.MachineName}-{Environment.ProcessId}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant()}";
        var request = new JoinRequest
        {
            WorkerId = workerId,
            Host = Environment.MachineName,
            Pid = Environment.ProcessId,
            CollectiveEndpoint = advertised.ToString(),
            PreferredRank = options.PreferredRank,
            MetricsEndpoint = metrics.Address.ToString(),
        };

        // Outlives the generations: failed checkpoints in a row count across a rejoin.
        var checkpointFailures = new CheckpointFailures(_logger);
        bool joinedOnce = false;
        var joinDeadline = DateTime.UtcNow + options.JoinTimeout;
        // The replica state kept from an aborted generation, offered to the next (docs/architecture.md,
        // "Recovery from live peers"), and the run it belongs to.
        ReplicaState? kept = null;
        string keptRun = "";
        while (true)
        {
            request.HeldStep = kept?.Step ?? -1;
            request.HeldRunId = kept is null ? "" : keptRun;
            Assignment assignment;
            try
            {
                assignment = await client.JoinAsync(request, cancellationToken: ct).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unauthenticated or StatusCode.PermissionDenied)
            {
                // Both are a refusal no retry can fix: Unauthenticated for a wrong or missing run secret,
                // PermissionDenied for a caller that has the secret but not the right.
                LogRefused(_logger, options.Coordinator, e.Status.Detail);
                return WorkerExitCodes.Refused;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && !joinedOnce && DateTime.UtcNow < joinDeadline)
            {
                // Not up yet (a worker pod scheduled before the coordinator's): try again, within a bound.
                LogWaitingForCoordinator(_logger, options.Coordinator, e.Status.Detail);
                await Task.Delay(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                continue;
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Cancelled or StatusCode.Internal)
            {
                LogCoordinatorGone(_logger, options.Coordinator, e.Status.Detail);
                return WorkerExitCodes.CoordinatorLost;
            }

            if (assignment.Stop)
            {
                return WorkerExitCodes.Success;
            }

            LogAssigned(_logger, assignment.Generation, assignment.Rank, assignment.WorldSize);
            GenerationRun generation;
            try
            {
                if (!joinedOnce)
                {
                    ReportDevice(GenerationRun.ConfigOf(assignment).Training);
                }

                generation = new GenerationRun(client, endpoint, assignment, workerId, loggers, options.Faults, checkpointFailures,
                    keptRun == assignment.RunId ? kept : null);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                // Refused before training (a setting this worker cannot run with): the worker exits with
                // it; the coordinator hears first, which under `serve` is its only way to know why.
                await FailureReports.SendAsync(client, FailureReports.Describe(e, FailureReports.KindOf(e), workerId, assignment,
                    step: 0, HeartbeatRequest.Types.Phase.Joining), _logger, ct).ConfigureAwait(false);
                throw;
            }

            joinedOnce = true;
            var end = await generation.RunAsync(ct).ConfigureAwait(false);
            (kept, keptRun) = (generation.Kept, assignment.RunId);
            if (end == GenerationEnd.Stop)
            {
                return WorkerExitCodes.Success;
            }
        }
    }

    /// <summary>
    /// Says once, at start, what this worker trains on. With device cuda and no GPU in sight it
    /// throws <see cref="ConfigException"/> (naming CUDA_VISIBLE_DEVICES), and the worker exits 2:
    /// no replacement on this host would fare better.
    /// </summary>
    private void ReportDevice(TrainOptions options)
    {
        LogAllocator(_logger, NativeAllocator.Configure());
        LogJit(_logger, JitTiering());
        TorchRuntime.SetThreads(options.Threads);
        LogDevice(_logger, TorchRuntime.Describe(TorchRuntime.SelectDevice(options.Device)));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Collectives endpoint at {Address} (link stack: {Link})")]
    private static partial void LogEndpoint(ILogger logger, Uri address, string link);

    [LoggerMessage(Level = LogLevel.Information, Message = "Native memory: {Outcome}")]
    private static partial void LogAllocator(ILogger logger, string outcome);

    /// <summary>
    /// Whether the JIT re-compiles hot methods in the background (the worker's build turns that off:
    /// docs/torchsharp.md, "JIT tiering"); the runtime's environment variables override the build.
    /// </summary>
    private static string JitTiering()
    {
        foreach (string name in (string[])["DOTNET_TieredCompilation", "COMPlus_TieredCompilation"])
        {
            string? value = Environment.GetEnvironmentVariable(name);
            if (!string.IsNullOrEmpty(value))
            {
                return $"tiered compilation {(value.Trim() == "0" ? "off" : "on")} ({name}={value})";
            }
        }

        bool tiered = !AppContext.TryGetSwitch("System.Runtime.TieredCompilation", out bool enabled) || enabled;
        return tiered ? "tiered compilation on" : "tiered compilation off (each method compiled once, optimised)";
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "JIT: {Outcome}")]
    private static partial void LogJit(ILogger logger, string outcome);

    [LoggerMessage(Level = LogLevel.Information, Message = "Device: {Device}")]
    private static partial void LogDevice(ILogger logger, string device);

    [LoggerMessage(Level = LogLevel.Information, Message = "Metrics for Prometheus at {Address}")]
    private static partial void LogMetrics(ILogger logger, Uri address);

    [LoggerMessage(Level = LogLevel.Error, Message = "The coordinator at {Coordinator} refused this worker: {Detail}")]
    private static partial void LogRefused(ILogger logger, Uri coordinator, string detail);

    [LoggerMessage(Level = LogLevel.Information, Message = "Waiting for the coordinator at {Coordinator}: {Detail}")]
    private static partial void LogWaitingForCoordinator(ILogger logger, Uri coordinator, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "Lost the coordinator at {Coordinator}: {Detail}")]
    private static partial void LogCoordinatorGone(ILogger logger, Uri coordinator, string detail);

    [LoggerMessage(Level = LogLevel.Information, Message = "Generation {Generation}: rank {Rank} of {WorldSize}")]
    private static partial void LogAssigned(ILogger logger, long generation, int rank, int worldSize);
}

public static class WorkerExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    /// <summary>Bad arguments, or a run setting this worker cannot run with (device cuda without a GPU).</summary>
    public const int BadArguments = 2;
    public const int Refused = 3;
    public const int CoordinatorLost = 4;

    /// <summary>
    /// Its training thread did not stop within the collective timeout of an abort
    /// (blocked in a read, a stalled device): the process exits so that a replacement can start, which
    /// under Kubernetes is the only way a stuck pod ends.
    /// </summary>
    public const int Stuck = 5;

    /// <summary>Stopped by SIGTERM in the middle of a generation (Kubernetes must not count it as done).</summary>
    public const int Terminated = 143;
}

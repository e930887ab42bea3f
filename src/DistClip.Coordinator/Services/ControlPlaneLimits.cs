using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace DistClip.Coordinator.Services;

/// <summary>
/// What a stranger can make the control plane hold before it is refused: connections, streams,
/// bytes and time, each bounded (docs/architecture.md, "Control-plane limits"). A worker holds one
/// connection with a heartbeat stream and at most a few calls beside it, so none of these bounds is
/// near what a run uses.
/// </summary>
internal static class ControlPlaneLimits
{
    /// <summary>Streams one connection may have open at once (a worker uses two or three).</summary>
    public const int MaxStreamsPerConnection = 16;

    /// <summary>Connections beyond the world's own, for probes, scrapers and a worker's reconnects.</summary>
    public const int SpareConnections = 64;

    /// <summary>A connection with no stream open is closed after this (a live worker always has its heartbeat stream).</summary>
    public static readonly TimeSpan IdleConnectionTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Time to send a request's headers (and, on a new connection, the HTTP/2 preface).</summary>
    public static readonly TimeSpan RequestHeadersTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The slowest request body accepted once its grace period is over. gRPC lifts it for streaming
    /// requests (the heartbeat idles between beats), and those need the secret; it bounds the
    /// unary calls, including the health check the kubelet makes without one.
    /// </summary>
    public static readonly MinDataRate MinRequestBodyDataRate = new(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));

    /// <summary>The largest message a run's worker sends: rank 0's summary (its loss curve) in <c>Finish</c>.</summary>
    public const int MaxRunControlMessageBytes = 16 << 20;

    /// <summary>The largest message any other service takes (a health check request is a service name).</summary>
    public const int MaxOtherMessageBytes = 4 << 10;

    /// <summary>Open connections at most: every worker's with room to spare. Beyond it Kestrel closes new ones at once.</summary>
    public static long MaxConnections(int worldSize) => SpareConnections + 4L * worldSize;

    public static void Apply(KestrelServerLimits limits, int worldSize)
    {
        limits.MaxConcurrentConnections = MaxConnections(worldSize);
        limits.Http2.MaxStreamsPerConnection = MaxStreamsPerConnection;
        limits.KeepAliveTimeout = IdleConnectionTimeout;
        limits.RequestHeadersTimeout = RequestHeadersTimeout;
        limits.MinRequestBodyDataRate = MinRequestBodyDataRate;
    }
}

using System.Net;

namespace DistClip.Collectives.Grpc;

/// <summary>The gRPC transport's settings: where to listen, the run's secret, and the HTTP/2 tuning.</summary>
public sealed record GrpcTransportOptions
{
    /// <summary>The run's shared secret; every peer presents it and a wrong or missing one is refused (Unauthenticated).</summary>
    public required string Secret { get; init; }

    /// <summary>
    /// The run's TLS material; null = h2c. With it both link ends speak TLS 1.2+ with ALPN h2, present
    /// their certificates and accept only peers chained to the run's CA (mutual TLS), on either link
    /// stack; the endpoint's address becomes https. Its handshake counts toward
    /// <see cref="HandshakeTimeout"/> and <see cref="MaxUnauthenticatedConnections"/>.
    /// </summary>
    public DistClip.Tls.RunTls? Tls { get; init; }

    /// <summary>Where this rank's collectives endpoint listens (h2c). Loopback unless the cluster says otherwise.</summary>
    public IPAddress ListenAddress { get; init; } = IPAddress.Loopback;

    /// <summary>0 picks a free port; <see cref="GrpcCollectiveEndpoint.Address"/> tells which.</summary>
    public int Port { get; init; }

    /// <summary>How long joining a group waits for both neighbours' links.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// HTTP/2 receive window per stream. The HTTP/2 default (64 KiB, Kestrel's 768 KiB) stalls a
    /// 1 MiB chunk on every round trip; 16 MiB keeps several chunks in flight.
    /// </summary>
    public int StreamWindowBytes { get; init; } = 16 << 20;

    /// <summary>HTTP/2 receive window per connection (each link has its own connection).</summary>
    public int ConnectionWindowBytes { get; init; } = 32 << 20;

    /// <summary>
    /// Block size of Kestrel's memory pool on this endpoint. Kestrel's default 4 KiB blocks make a
    /// 1 MiB chunk 256 segments; 64 KiB blocks measured markedly faster. 0 keeps Kestrel's pool.
    /// </summary>
    public int KestrelBlockBytes { get; init; } = 64 << 10;

    /// <summary>
    /// The largest HTTP/2 frame this endpoint accepts (SETTINGS_MAX_FRAME_SIZE, 16 KiB..16 MiB − 1).
    /// The default holds a 1 MiB chunk and its header in one DATA frame.
    /// </summary>
    public int MaxFrameBytes { get; init; } = (1 << 20) + 1024;

    /// <summary>
    /// How long the direct server gives a new connection to get from its first byte to its request
    /// headers: one deadline over every read and write of that handshake, so that a peer which
    /// stops reading cannot hold a connection by leaving our replies unsent. (Waiting for the group
    /// afterwards is bounded by <see cref="ConnectTimeout"/>.)
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How many connections the direct server holds before their secret is checked; more are closed
    /// at once. A link needs one; neighbours of two generations may overlap, so the default leaves
    /// ample room while bounding what strangers can pin (1..4096).
    /// </summary>
    public int MaxUnauthenticatedConnections { get; init; } = 32;

    /// <summary>
    /// The most SETTINGS and PING frames a peer may send before its request headers: each one is
    /// answered, so without a bound a peer that never reads makes this side queue replies
    /// (1..1024). gRPC clients send two or three.
    /// </summary>
    public int MaxHandshakeControlFrames { get; init; } = 32;

    /// <summary>
    /// The largest header block either direct end accepts, HEADERS and all its CONTINUATION frames
    /// together, and the largest header list it decodes (RFC 9113 §6.5.2's size: each field's name
    /// and value plus 32), so that neither CONTINUATION nor HPACK indexing can grow it further
    /// (1 KiB..1 MiB). Link headers take a few hundred bytes.
    /// </summary>
    public int MaxHeaderBytes { get; init; } = 16 << 10;

    /// <summary>Which server receives this rank's incoming link; both speak the same gRPC wire format.</summary>
    public LinkServer Server { get; init; } = LinkServer.Http2Direct;

    /// <summary>Which client sends on this rank's outgoing link; both speak the same gRPC wire format.</summary>
    public LinkClient Client { get; init; } = LinkClient.Http2Direct;

    /// <summary>These options with the client and server of <paramref name="stack"/>.</summary>
    public GrpcTransportOptions WithLink(LinkStack stack) => stack switch
    {
        LinkStack.Direct => this with { Client = LinkClient.Http2Direct, Server = LinkServer.Http2Direct },
        LinkStack.Grpc => this with { Client = LinkClient.GrpcNetClient, Server = LinkServer.Kestrel },
        _ => throw new ArgumentOutOfRangeException(nameof(stack), stack, "not a link stack"),
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrEmpty(Secret))
        {
            throw new ArgumentException($"{nameof(Secret)} must be set.", nameof(Secret));
        }

        if (Port is < 0 or > 65535)
        {
            throw new ArgumentException($"{nameof(Port)} must be 0..65535, not {Port}.", nameof(Port));
        }

        if (ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(ConnectTimeout)} must be positive, not {ConnectTimeout}.", nameof(ConnectTimeout));
        }

        if (HandshakeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(HandshakeTimeout)} must be positive, not {HandshakeTimeout}.", nameof(HandshakeTimeout));
        }

        if (MaxUnauthenticatedConnections is < 1 or > 4096)
        {
            throw new ArgumentException(
                $"{nameof(MaxUnauthenticatedConnections)} must be 1..4096, not {MaxUnauthenticatedConnections}.", nameof(MaxUnauthenticatedConnections));
        }

        if (MaxHandshakeControlFrames is < 1 or > 1024)
        {
            throw new ArgumentException(
                $"{nameof(MaxHandshakeControlFrames)} must be 1..1024, not {MaxHandshakeControlFrames}.", nameof(MaxHandshakeControlFrames));
        }

        if (MaxHeaderBytes is < 1024 or > 1 << 20)
        {
            throw new ArgumentException($"{nameof(MaxHeaderBytes)} must be 1 KiB..1 MiB, not {MaxHeaderBytes}.", nameof(MaxHeaderBytes));
        }

        if (StreamWindowBytes < 65_535 || ConnectionWindowBytes < StreamWindowBytes)
        {
            throw new ArgumentException(
                $"{nameof(StreamWindowBytes)} must be at least 65535 and at most {nameof(ConnectionWindowBytes)}.",
                nameof(StreamWindowBytes));
        }

        if (MaxFrameBytes is < 16_384 or > (1 << 24) - 1)
        {
            throw new ArgumentException($"{nameof(MaxFrameBytes)} must be 16384..16777215, not {MaxFrameBytes}.", nameof(MaxFrameBytes));
        }

        if (!Enum.IsDefined(Server))
        {
            throw new ArgumentException($"{nameof(Server)} must be one of {string.Join(", ", Enum.GetNames<LinkServer>())}.", nameof(Server));
        }

        if (!Enum.IsDefined(Client))
        {
            throw new ArgumentException($"{nameof(Client)} must be one of {string.Join(", ", Enum.GetNames<LinkClient>())}.", nameof(Client));
        }

        if (KestrelBlockBytes != 0 && (KestrelBlockBytes < 4096 || KestrelBlockBytes > 1 << 20))
        {
            throw new ArgumentException(
                $"{nameof(KestrelBlockBytes)} must be 0 or 4 KiB..1 MiB, not {KestrelBlockBytes}.", nameof(KestrelBlockBytes));
        }
    }
}

/// <summary>
/// The link stack a worker runs, as users choose it (<c>worker --link</c>, the chart's
/// <c>workers.link</c>, <c>coordinator launch --link</c>). Both speak the same gRPC wire format, so
/// workers on different stacks interoperate.
/// </summary>
public enum LinkStack
{
    /// <summary>DistClip's own HTTP/2 client and server for the link call: the fast path, and the default.</summary>
    Direct,

    /// <summary>
    /// Stock Grpc.Net.Client and Kestrel with Grpc.AspNetCore: slower (more copies, 16 KiB frames), for
    /// networks whose proxies or meshes the direct ends cannot talk through.
    /// </summary>
    Grpc,
}

/// <summary>The client that carries a rank's frames to its right neighbour's endpoint.</summary>
public enum LinkClient
{
    /// <summary>
    /// DistClip's own single-call HTTP/2 client: each chunk is one DATA frame written from the
    /// caller's memory straight to the socket. The default.
    /// </summary>
    Http2Direct,

    /// <summary>Grpc.Net.Client over SocketsHttpHandler (16 KiB frames); for comparison and as a fallback.</summary>
    GrpcNetClient,
}

/// <summary>The server that a rank's left neighbour streams its frames into.</summary>
public enum LinkServer
{
    /// <summary>
    /// DistClip's own h2c server for the one link call: each chunk's payload is received from the
    /// socket straight into the buffer the ring algorithm reads. The default.
    /// </summary>
    Http2Direct,

    /// <summary>Kestrel with Grpc.AspNetCore (three copies of every received byte); for comparison and as a fallback.</summary>
    Kestrel,
}

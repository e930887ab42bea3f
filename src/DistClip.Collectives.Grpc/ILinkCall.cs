using DistClip.Collectives.Transport;
using Grpc.Core;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// One <c>CollectiveLink.Open</c> call as the sending side sees it: frames go out on the request
/// stream, and the response side only tells whether the callee admitted the link and when it ended.
/// Two clients implement it (see <see cref="LinkClient"/>); both speak the same gRPC wire format to
/// the same Kestrel service.
/// </summary>
internal interface ILinkCall : IDisposable
{
    /// <summary>The callee's response headers; faults with <see cref="RpcException"/> (Unavailable if it cannot be reached).</summary>
    Task<Metadata> ResponseHeadersAsync { get; }

    /// <summary>Completes when the callee ends the call with OK; faults with <see cref="RpcException"/> otherwise.</summary>
    Task Completion { get; }

    /// <summary>Writes one <c>CollectiveFrame</c>; <paramref name="payload"/> must not change until this completes.</summary>
    ValueTask WriteAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken);

    /// <summary>Ends the request stream (half-close): the callee drains what was sent and ends the call.</summary>
    Task CompleteRequestAsync();

    /// <summary>Aborts the call at once; the callee sees a reset stream.</summary>
    void Cancel();
}

using DistClip.Collectives.Grpc.V1;
using DistClip.Collectives.Transport;
using Grpc.Core;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// The gRPC face of <see cref="LinkAcceptor"/>: reads the call's metadata, hands the stream over and
/// maps refusals to statuses. Bound by hand (not by the generated base class) so that frames go
/// through <see cref="FrameMarshaller"/>.
/// </summary>
internal sealed class CollectiveLinkService(LinkAcceptor acceptor) : CollectiveLinkServiceBase
{
    public override async Task Open(IAsyncStreamReader<RingFrame> requests, IServerStreamWriter<LinkEvent> responses, ServerCallContext context)
    {
        try
        {
            var headers = context.RequestHeaders;
            var request = new LinkRequest(
                headers.GetValue(LinkHeaders.Secret),
                headers.GetValue(LinkHeaders.Generation),
                headers.GetValue(LinkHeaders.Rank),
                headers.GetValue(LinkHeaders.WorldSize),
                headers.GetValue(LinkHeaders.RankToken),
                context.Peer);
            await acceptor.ServeAsync(
                request, requests, () => context.WriteResponseHeadersAsync(new Metadata { { LinkHeaders.Accepted, "1" } }), context.CancellationToken)
                .ConfigureAwait(false);
        }
        catch (LinkRefusedException ex)
        {
            throw new RpcException(new Status(ToStatus(ex.Reason), ex.Message));
        }
        catch (LinkClosedException ex)
        {
            throw new RpcException(new Status(StatusCode.Aborted, ex.Message));
        }
    }

    /// <summary>
    /// The status of a refusal, the same from both servers: a wrong or missing secret is
    /// <see cref="StatusCode.Unauthenticated"/> (no valid credentials for this run); a caller that has
    /// the secret but presents a token that is not the expected neighbour's is
    /// <see cref="StatusCode.PermissionDenied"/> (authenticated, but not allowed this link).
    /// </summary>
    public static StatusCode ToStatus(LinkRefusal reason) => reason switch
    {
        LinkRefusal.WrongSecret => StatusCode.Unauthenticated,
        LinkRefusal.WrongToken => StatusCode.PermissionDenied,
        LinkRefusal.NoSuchGroup => StatusCode.DeadlineExceeded,
        LinkRefusal.AlreadyConnected => StatusCode.AlreadyExists,
        LinkRefusal.Malformed => StatusCode.InvalidArgument,
        _ => StatusCode.FailedPrecondition,
    };
}

/// <summary>
/// What the generated base class would be, with <see cref="LinkMethods.ServerOpen"/>'s marshaller.
/// grpc-dotnet binds only virtual methods declared on the type that <see cref="BindServiceMethodAttribute"/> names.
/// </summary>
[BindServiceMethod(typeof(CollectiveLinkServiceBase), nameof(BindService))]
internal abstract class CollectiveLinkServiceBase
{
    public static void BindService(ServiceBinderBase binder, CollectiveLinkServiceBase? service) =>
        binder.AddMethod(LinkMethods.ServerOpen, service is null ? null : service.Open);

    public abstract Task Open(IAsyncStreamReader<RingFrame> requests, IServerStreamWriter<LinkEvent> responses, ServerCallContext context);
}

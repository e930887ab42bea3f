using DistClip.Control;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace DistClip.Coordinator.Services;

/// <summary>
/// Refuses every control-plane call that does not carry the run's secret, before its handler runs.
/// <see cref="SecretGate"/> has already refused such calls before their body was read; this keeps the
/// services safe wherever they are hosted without it.
/// </summary>
public sealed class SecretInterceptor(string secret) : Interceptor
{
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        // A health check says only "serving" or not, and probes carry no secret. Watch is a stream a
        // stranger could hold open, so it needs the secret like everything else.
        if (context.Method == SecretGate.HealthCheckPath)
        {
            return;
        }

        if (!RunSecret.Matches(secret, context.RequestHeaders.GetValue(RunSecret.Header)))
        {
            // Unauthenticated, not PermissionDenied: the caller has not shown it belongs to the run at all.
            // PermissionDenied is for a caller that has the secret but not the right (a wrong rank token).
            throw new RpcException(new Status(StatusCode.Unauthenticated, "this run's secret is required to join it"));
        }
    }
}

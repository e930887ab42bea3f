using System.Globalization;
using System.IO.Pipelines;
using DistClip.Control;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace DistClip.Coordinator.Services;

/// <summary>
/// Refuses a call without the run's secret from its headers alone, before a byte of its body is
/// read: gRPC reads a unary request's whole message before any interceptor runs, so a stranger could
/// otherwise make the coordinator buffer (and inflate) a 16 MiB body, or trickle one for minutes.
/// Compressed requests are refused the same way: no worker compresses, and inflating is work a small
/// body can make large.
/// </summary>
internal static class SecretGate
{
    /// <summary>
    /// What a refused call's body may still be read for (and thrown away), so that a client that sent
    /// a small body whole before reading the answer (every gRPC client) sees the status rather than a
    /// reset stream. Kestrel has buffered about this much per stream anyway (its stream window);
    /// anything bigger or slower is left unread and the stream is reset.
    /// </summary>
    private const int MaxDiscardedBytes = 1 << 20;

    private static readonly TimeSpan MaxDiscardTime = TimeSpan.FromSeconds(1);

    /// <summary>The one call that needs no secret: the kubelet's probe, a unary "are you serving".</summary>
    public const string HealthCheckPath = "/grpc.health.v1.Health/Check";

    public static IApplicationBuilder UseSecretGate(this IApplicationBuilder app, string secret) =>
        app.Use(async (context, next) =>
        {
            var headers = context.Request.Headers;
            if (context.Request.Path != HealthCheckPath && !RunSecret.Matches(secret, headers[RunSecret.Header].FirstOrDefault()))
            {
                // The same status the interceptor gives (a worker reports it as "refused"), and no more:
                // Unauthenticated, as the caller lacks valid credentials (PermissionDenied is for a caller
                // that has the secret but not the right, such as a wrong rank token).
                await RefuseAsync(context, StatusCode.Unauthenticated, "this run's secret is required to join it");
                return;
            }

            string? encoding = headers["grpc-encoding"].FirstOrDefault();
            if (encoding is not null && encoding != "identity")
            {
                context.Response.Headers["grpc-accept-encoding"] = "identity";
                await RefuseAsync(context, StatusCode.Unimplemented, "compressed requests are not accepted");
                return;
            }

            await next(context);
        });

    /// <summary>A gRPC "trailers-only" response: the status in the headers, no body.</summary>
    private static async Task RefuseAsync(HttpContext context, StatusCode code, string message)
    {
        await DiscardSmallBodyAsync(context.Request.BodyReader, context.RequestAborted).ConfigureAwait(false);
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
    }

    private static async Task DiscardSmallBodyAsync(PipeReader body, CancellationToken aborted)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        limit.CancelAfter(MaxDiscardTime);
        long discarded = 0;
        try
        {
            while (discarded <= MaxDiscardedBytes)
            {
                var read = await body.ReadAsync(limit.Token).ConfigureAwait(false);
                discarded += read.Buffer.Length;
                body.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or Microsoft.AspNetCore.Connections.ConnectionResetException)
        {
            // Too slow, or the caller went away: refuse (or not) without the rest.
        }
    }
}

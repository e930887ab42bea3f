using System.Reflection;
using DistClip.Checkpoints;
using DistClip.Collectives;
using DistClip.Config;
using DistClip.Control.V1;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace DistClip.Worker;

/// <summary>
/// Tells the coordinator why this worker's generation failed, before it exits (or, after a collective
/// timeout, rejoins): the exception's type and message, with the rank, step and phase, so that the
/// run's output says what happened rather than only "exited with status 1". Best effort, with a short
/// deadline: a coordinator that cannot be reached learns of the exit as before.
/// </summary>
internal static partial class FailureReports
{
    /// <summary>The most of an exception's message sent (the coordinator keeps no more either).</summary>
    public const int MaxMessageLength = 4096;

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);

    /// <summary>Fatal when a restart cannot fix it (<see cref="IFatalRunError"/>); otherwise an error.</summary>
    /// <remarks>
    /// Fatal: what a restart cannot fix (<see cref="IFatalRunError"/>: a refused setting, a diverged
    /// run), and checkpoints that keep failing (<see cref="CheckpointWriteException"/>, from a library
    /// that references no other).
    /// </remarks>
    public static WorkerFailure.Types.Kind KindOf(Exception e) =>
        Cause(e) is IFatalRunError or CheckpointWriteException ? WorkerFailure.Types.Kind.Fatal : WorkerFailure.Types.Kind.Error;

    /// <summary>Whether a collective gave up waiting on a peer (anywhere in the chain of causes).</summary>
    public static bool IsCollectiveTimeout(Exception e) => Chain(e).Any(x => x is CollectiveTimeoutException);

    public static WorkerFailure Describe(Exception e, WorkerFailure.Types.Kind kind, string workerId, Assignment assignment,
        long step, HeartbeatRequest.Types.Phase phase)
    {
        var cause = kind == WorkerFailure.Types.Kind.CollectiveTimeout ? Chain(e).OfType<CollectiveTimeoutException>().First() : Cause(e);
        return new WorkerFailure
        {
            WorkerId = workerId,
            Generation = assignment.Generation,
            Rank = assignment.Rank,
            Step = step,
            Phase = phase,
            Kind = kind,
            ExceptionType = cause.GetType().Name,
            Message = cause.Message.Length > MaxMessageLength ? cause.Message[..MaxMessageLength] : cause.Message,
            RankToken = assignment.RankToken,
        };
    }

    public static async Task SendAsync(RunControl.RunControlClient client, WorkerFailure failure, ILogger logger, CancellationToken ct)
    {
        try
        {
            await client.ReportFailureAsync(failure, deadline: DateTime.UtcNow + Deadline, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            LogNotReported(logger, e.Status.StatusCode, e.Status.Detail);
        }
    }

    /// <summary>The exception that says what happened, beneath the wrappers an await or a reflective call adds.</summary>
    private static Exception Cause(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } or TargetInvocationException && e.InnerException is { } inner)
        {
            e = inner;
        }

        return e;
    }

    private static IEnumerable<Exception> Chain(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            yield return x;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not report the failure to the coordinator ({Status}): {Detail}")]
    private static partial void LogNotReported(ILogger logger, StatusCode status, string detail);
}

using DistClip.Config;

namespace DistClip.Coordinator.Runs;

/// <summary>How a run ended.</summary>
public sealed record RunOutcome(bool Succeeded, RunSummary? Summary, string? Error, int Restarts)
{
    public static RunOutcome Success(RunSummary summary, int restarts) => new(true, summary, null, restarts);

    public static RunOutcome Failure(string error, int restarts) => new(false, null, error, restarts);
}

using System.Diagnostics;
using DistClip.Config;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging;

namespace DistClip.Training;

/// <summary>
/// Trains one model in this process on the whole global batch and evaluates it: the world-size-1
/// case of <see cref="TrainingSession"/>, and the reference the equivalence tests compare to.
/// </summary>
public static class SingleProcessRun
{
    public static RunSummary Run(TrainOptions options, ILogger logger, IProgress<StepMetrics>? progress, CancellationToken ct)
    {
        var wall = Stopwatch.StartNew();
        using var session = new TrainingSession(options, SingleProcessCollectives.Instance, logger);
        session.Train(m => progress?.Report(m), ct);
        return session.Summarize(wall.Elapsed.TotalSeconds);
    }
}

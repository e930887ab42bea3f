using System.Globalization;
using DistClip.Training.Steps;

namespace DistClip.Training;

/// <summary>
/// More consecutive steps than <c>max_skipped_steps</c> had a non-finite global gradient norm or
/// loss: training has diverged, and going on would only skip every step. Every rank throws it at
/// the same step (the values are global). Retrying from the last checkpoint would diverge again at
/// the same place: the run stops, and the newest checkpoint (never a non-finite one) stays.
/// </summary>
public sealed class TrainingDivergedException : Exception, DistClip.Config.IFatalRunError
{
    public TrainingDivergedException(IReadOnlyList<StepMetrics> skipped, int maxSkippedSteps)
        : base(Describe(skipped, maxSkippedSteps))
    {
        FirstStep = skipped[0].Step;
        LastStep = skipped[^1].Step;
    }

    public TrainingDivergedException()
    {
    }

    public TrainingDivergedException(string message)
        : base(message)
    {
    }

    public TrainingDivergedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The first of the consecutive skipped steps.</summary>
    public long FirstStep { get; }

    /// <summary>The step at which training gave up.</summary>
    public long LastStep { get; }

    private static string Describe(IReadOnlyList<StepMetrics> skipped, int maxSkippedSteps)
    {
        // At most the last five steps' values: max_skipped_steps may be large.
        string values = string.Join("; ", skipped.TakeLast(5).Select(m =>
            string.Create(CultureInfo.InvariantCulture, $"step {m.Step}: gradient norm {m.GradNorm}, loss {m.Loss}")));
        string what = skipped.All(m => !double.IsFinite(m.GradNorm)) ? "a non-finite gradient norm"
            : skipped.All(m => !double.IsFinite(m.Loss)) ? "a non-finite loss"
            : "a non-finite gradient norm or loss";
        return string.Create(CultureInfo.InvariantCulture,
            $"training diverged: steps {skipped[0].Step}–{skipped[^1].Step} had {what} ({skipped.Count} in a row, more than max_skipped_steps {maxSkippedSteps}; ")
            + values + "). No update was applied at those steps, and no checkpoint holds non-finite weights. Lower the learning rate or check the data.";
    }
}

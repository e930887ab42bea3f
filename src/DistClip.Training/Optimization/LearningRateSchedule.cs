namespace DistClip.Training.Optimization;

/// <summary>
/// Linear warm-up from 0 to the peak rate over <c>WarmupSteps</c>, then cosine decay to
/// <c>MinRate</c> at <c>TotalSteps</c>. A pure function of the step so that a resumed run needs
/// nothing but the step number to continue the schedule exactly.
/// </summary>
public sealed record LearningRateSchedule(double PeakRate, int WarmupSteps, int TotalSteps, double MinRate = 0)
{
    /// <summary>The rate used by optimizer step <paramref name="step"/> (0-based).</summary>
    public double At(long step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps)
        {
            // (step + 1): the first step already moves the weights, so it must not use rate 0.
            return PeakRate * (step + 1) / WarmupSteps;
        }

        long decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        return MinRate + 0.5 * (PeakRate - MinRate) * (1 + Math.Cos(Math.PI * progress));
    }
}

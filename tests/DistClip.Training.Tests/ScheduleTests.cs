using DistClip.Training.Optimization;

namespace DistClip.Training.Tests;

public class ScheduleTests
{
    [Fact]
    public void Warmup_rises_linearly_from_the_first_step_to_the_peak()
    {
        var schedule = new LearningRateSchedule(PeakRate: 1e-3, WarmupSteps: 4, TotalSteps: 20);
        Assert.Equal(0.25e-3, schedule.At(0), 12);
        Assert.Equal(0.5e-3, schedule.At(1), 12);
        Assert.Equal(1e-3, schedule.At(3), 12);
    }

    [Fact]
    public void Cosine_decay_starts_at_the_peak_passes_the_midpoint_and_ends_at_the_minimum()
    {
        var schedule = new LearningRateSchedule(PeakRate: 1e-3, WarmupSteps: 10, TotalSteps: 110, MinRate: 1e-5);
        Assert.Equal(1e-3, schedule.At(10), 12);
        Assert.Equal(1e-5 + 0.5 * (1e-3 - 1e-5), schedule.At(60), 12);
        Assert.Equal(1e-5, schedule.At(110), 12);
        Assert.Equal(1e-5, schedule.At(500), 12); // past the end it stays at the floor
        for (int s = 11; s <= 110; s++)
        {
            Assert.True(schedule.At(s) <= schedule.At(s - 1), $"rate rose at step {s}");
        }
    }

    [Fact]
    public void Without_warmup_the_first_step_uses_the_peak()
    {
        var schedule = new LearningRateSchedule(PeakRate: 2e-4, WarmupSteps: 0, TotalSteps: 10);
        Assert.Equal(2e-4, schedule.At(0), 12);
    }
}

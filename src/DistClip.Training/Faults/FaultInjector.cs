using System.Diagnostics;

namespace DistClip.Training.Faults;

/// <summary>
/// Fires a <see cref="FaultPlan"/>'s faults on one rank as the step loop passes their points. Each
/// (fault, step) fires once per run, across processes: before firing, the injector creates a marker
/// file (<see cref="FileMode.CreateNew"/>) in <paramref name="stateDirectory"/>, and a marker that is
/// already there means another process (an earlier incarnation, or another rank when the fault names
/// none) fired it, so a replacement redoing that step is not killed again. The directory must be
/// shared by every worker of the run for "once" to hold across hosts.
/// </summary>
/// <param name="announce">Told, just before a fault fires, what fires (the worker writes it to stderr and flushes it: a kill leaves no time for a logger's queue).</param>
public sealed class FaultInjector(FaultPlan plan, int rank, string stateDirectory, Action<string>? announce = null) : IStepHooks
{
    public const string NoSpaceMessage = "No space left on device (injected by DISTCLIP_FAULTS)";

    public void At(TrainingPhase point, long step)
    {
        for (int i = 0; i < plan.Faults.Count; i++)
        {
            var fault = plan.Faults[i];
            if (fault.Kind != FaultKind.Nan && fault.Matches(point, step, rank) && Claim(i, fault, step))
            {
                Fire(fault, point, step);
            }
        }
    }

    public bool PoisonGradients(long step)
    {
        bool poison = false;
        for (int i = 0; i < plan.Faults.Count; i++)
        {
            var fault = plan.Faults[i];
            if (fault.Kind == FaultKind.Nan && fault.Matches(TrainingPhase.Backward, step, rank) && Claim(i, fault, step))
            {
                announce?.Invoke(Describe(fault, TrainingPhase.Backward, step));
                poison = true;
            }
        }

        return poison;
    }

    /// <summary>True when this process is the first of the run to reach (fault, step).</summary>
    private bool Claim(int index, Fault fault, long step)
    {
        Directory.CreateDirectory(stateDirectory);
        string marker = Path.Combine(stateDirectory, $"fault-{index}-{FaultPlan.KindName(fault.Kind)}-step-{step}");
        try
        {
            using var created = new FileStream(marker, FileMode.CreateNew, FileAccess.Write);
            return true;
        }
        catch (IOException) when (File.Exists(marker))
        {
            return false;
        }
    }

    private void Fire(Fault fault, TrainingPhase point, long step)
    {
        announce?.Invoke(Describe(fault, point, step));
        switch (fault.Kind)
        {
            case FaultKind.Kill:
                // SIGKILL on Unix: the process ends here, nothing cleans up.
                Process.GetCurrentProcess().Kill();
                Thread.Sleep(Timeout.Infinite);
                break;
            case FaultKind.Stall:
                // Like open(2) on a FIFO nobody writes: no cancellation token reaches this thread.
                Thread.Sleep(Timeout.Infinite);
                break;
            case FaultKind.WriteFail:
                throw new IOException(NoSpaceMessage);
            case FaultKind.Throw:
                throw new InvalidOperationException($"injected failure ({fault.Text} at step {step}, {FaultPlan.PointName(point)}, rank {rank})");
        }
    }

    private string Describe(Fault fault, TrainingPhase point, long step) =>
        $"DISTCLIP_FAULTS: {FaultPlan.KindName(fault.Kind)} at step {step}, {FaultPlan.PointName(point)}, rank {rank} ({fault.Text})";
}

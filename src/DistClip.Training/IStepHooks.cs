namespace DistClip.Training;

/// <summary>
/// Points in the step loop where a test may step in: <see cref="TrainingSession"/> and
/// <see cref="Steps.ClipTrainer"/> call them on the training thread. Production runs use
/// <see cref="NoStepHooks"/>; the worker installs a <see cref="Faults.FaultInjector"/> when its
/// fault plan is not empty (docs/architecture.md, "Fault injection for tests").
/// </summary>
public interface IStepHooks
{
    /// <summary>
    /// The training thread enters <paramref name="point"/> of step <paramref name="step"/>: the
    /// 1-based step being computed (it becomes <c>StepsDone</c> when it completes); for
    /// <see cref="TrainingPhase.Checkpoint"/>, the step being saved, called from inside the
    /// checkpoint's write (so that a throw takes the store's real cleanup path).
    /// </summary>
    void At(TrainingPhase point, long step);

    /// <summary>
    /// After backward, before the all-reduce of step <paramref name="step"/>: true to put a NaN in
    /// this rank's local gradients (the all-reduced sum is then NaN on every rank).
    /// </summary>
    bool PoisonGradients(long step);
}

/// <summary>Hooks that do nothing: the default.</summary>
public sealed class NoStepHooks : IStepHooks
{
    public static readonly NoStepHooks Instance = new();

    private NoStepHooks()
    {
    }

    public void At(TrainingPhase point, long step)
    {
    }

    public bool PoisonGradients(long step) => false;
}

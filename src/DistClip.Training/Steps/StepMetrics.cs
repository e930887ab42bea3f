namespace DistClip.Training.Steps;

/// <summary>
/// Where one step's time went, in seconds. Data is the wait for the loader; AllGather is the loss
/// stage's collectives (the features' all-gather and their gradients' reduce-scatter, or the sigmoid
/// loss's ring shifts); Loss is the rest of the loss stage; AllReduce the parameters' gradients.
/// </summary>
public sealed record PhaseTimes(
    double Data,
    double Forward,
    double AllGather,
    double Loss,
    double Backward,
    double AllReduce,
    double Optimizer)
{
    public static readonly string[] Names = DistClip.Config.RunSummary.PhaseNames;

    public double Total => Data + Forward + AllGather + Loss + Backward + AllReduce + Optimizer;

    public double[] ToArray() => [Data, Forward, AllGather, Loss, Backward, AllReduce, Optimizer];
}

/// <summary>What one optimizer step produced.</summary>
/// <param name="Step">1-based number of the step just taken.</param>
/// <param name="Samples">Samples in the global batch of this step.</param>
/// <param name="LogitScale">The temperature parameter t after clamping (the logits use exp(t)).</param>
/// <param name="GradNorm">Global gradient norm before clipping.</param>
/// <param name="ImageToTextAccuracy">In-batch accuracy of the global logits, image rows.</param>
/// <param name="TextToImageAccuracy">In-batch accuracy of the global logits, text columns.</param>
/// <param name="Skipped">The gradient norm or the loss was not finite: no update was applied (on any rank).</param>
public sealed record StepMetrics(
    long Step,
    int Samples,
    double Loss,
    double LearningRate,
    double LogitScale,
    double GradNorm,
    double ImageToTextAccuracy,
    double TextToImageAccuracy,
    PhaseTimes Times,
    bool Skipped = false)
{
    /// <summary>
    /// The previous step's collective waits split into what communication added to the step and what
    /// this rank waited for slower ranks (<see cref="WaitSplit"/>): every rank's waits of a step
    /// travel in the next step's first collective. Null with one rank, in a rank's first step, and
    /// after a restart.
    /// </summary>
    public WaitSplit? PreviousWaits { get; init; }
}

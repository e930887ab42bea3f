namespace DistClip.Training.Optimization;

public enum OptimizerKind
{
    AdamW,
    Sgd,
}

/// <summary>Optimizer and schedule settings. Defaults follow the CLIP paper (betas 0.9/0.98, eps 1e-6).</summary>
public sealed record OptimizerSettings
{
    public OptimizerKind Kind { get; init; } = OptimizerKind.AdamW;
    public double LearningRate { get; init; } = 5e-4;
    public double MinLearningRate { get; init; }
    public int WarmupSteps { get; init; } = 10;
    public double WeightDecay { get; init; } = 0.2;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.98;
    public double Eps { get; init; } = 1e-6;

    /// <summary>Global gradient-norm clip; 0 or less disables clipping.</summary>
    public double GradClipNorm { get; init; } = 1.0;
}

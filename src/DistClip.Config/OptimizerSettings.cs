using DistClip.Config.Settings;

namespace DistClip.Config;

public enum OptimizerKind
{
    AdamW,
    Sgd,
}

/// <summary>Optimizer and schedule settings (a group of <see cref="TrainOptions"/>). Defaults follow the CLIP paper (betas 0.9/0.98, eps 1e-6).</summary>
public sealed record OptimizerSettings
{
    [Setting("adamw | sgd", Name = "optimizer")]
    public OptimizerKind Kind { get; init; } = OptimizerKind.AdamW;

    [Setting("peak learning rate", Name = "lr", Positive = true)]
    public double LearningRate { get; init; } = 5e-4;

    [Setting("learning rate at the end of the cosine decay", Name = "min-lr", Min = 0)]
    public double MinLearningRate { get; init; }

    [Setting("linear warm-up steps", Min = 0)]
    public int WarmupSteps { get; init; } = 10;

    [Setting("AdamW decay on weights of rank >= 2", Min = 0)]
    public double WeightDecay { get; init; } = 0.2;

    [Setting("AdamW beta1, in [0, 1)", Min = 0, Max = 1, ExclusiveMax = true)]
    public double Beta1 { get; init; } = 0.9;

    [Setting("AdamW beta2, in [0, 1)", Min = 0, Max = 1, ExclusiveMax = true)]
    public double Beta2 { get; init; } = 0.98;

    [Setting("AdamW epsilon", Positive = true)]
    public double Eps { get; init; } = 1e-6;

    /// <summary>Global gradient-norm clip; 0 or less disables clipping.</summary>
    [Setting("global gradient-norm clip, 0 = off", Name = "grad-clip", Min = 0)]
    public double GradClipNorm { get; init; } = 1.0;
}

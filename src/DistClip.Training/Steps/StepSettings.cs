using DistClip.Config;

namespace DistClip.Training.Steps;

/// <summary>How a step computes the loss and pushes it through the towers.</summary>
public sealed record StepSettings
{
    /// <summary>Rows and columns of one tile of logits in the loss stage: its memory is O(chunk²), not O(B²).</summary>
    public const int DefaultLossChunk = TrainOptions.DefaultLossChunk;

    public LossKind Loss { get; init; } = LossKind.Softmax;

    /// <summary>
    /// Samples per rank pushed through the towers at once; 0, or at least the local batch, means the
    /// whole local batch. Smaller values accumulate gradients over feature-cached micro-batches.
    /// </summary>
    public int MicroBatch { get; init; }

    public int LossChunk { get; init; } = DefaultLossChunk;

    /// <summary>The step's share of a run's settings.</summary>
    public static StepSettings Of(TrainOptions options) => new() { Loss = options.Loss, MicroBatch = options.MicroBatch, LossChunk = options.LossChunk };
}

using System.Diagnostics;
using DistClip.Config;
using static TorchSharp.torch;

namespace DistClip.Training.Steps;

/// <summary>What the loss stage hands back to the step: the global loss and this rank's gradients.</summary>
/// <param name="Loss">The global batch's loss (the same value on every rank).</param>
/// <param name="GlobalBatch">B: the pairs in the global batch (a skipped sample makes it smaller).</param>
/// <param name="ImageGradient">[b_r, D] dL/d(this rank's normalised image features), the whole of it.</param>
/// <param name="TextGradient">[b_r, D] dL/d(this rank's normalised text features).</param>
/// <param name="ScaleGradient">This rank's part of dL/dt, shaped like t; the parts sum to the whole.</param>
/// <param name="BiasGradient">This rank's part of dL/d(bias) (sigmoid loss only).</param>
/// <param name="CommunicationSeconds">Time spent in collectives inside the stage.</param>
/// <param name="PreviousWaits">Every rank's collective waits in its previous step, as the stage's first collective brought them (rank order).</param>
public sealed record LossOutput(
    double Loss,
    int GlobalBatch,
    Tensor ImageGradient,
    Tensor TextGradient,
    Tensor ScaleGradient,
    Tensor? BiasGradient,
    double ImageToTextAccuracy,
    double TextToImageAccuracy,
    double CommunicationSeconds,
    IReadOnlyList<CollectiveWaits?>? PreviousWaits = null);

/// <summary>
/// The loss of one step over the global batch, computed as this rank's share of it (docs/training-step.md):
/// from this rank's detached features to the exact gradient of the global loss with respect to
/// them. The step then pushes that gradient through the towers with backward(gradient).
/// </summary>
public abstract class LossStage
{
    private readonly Stopwatch _communication = new();

    protected LossStage(IStepCollectives collectives, int chunk)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunk, 1);
        Collectives = collectives;
        Chunk = chunk;
    }

    /// <summary>Rows and columns of one tile of logits: the stage's memory does not grow with B beyond O(B·D).</summary>
    public int Chunk { get; }

    protected IStepCollectives Collectives { get; }

    public static LossStage Create(LossKind kind, IStepCollectives collectives, int chunk) => kind switch
    {
        LossKind.Softmax => new SoftmaxLossStage(collectives, chunk),
        LossKind.Siglip => new SigLipLossStage(collectives, chunk),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown loss"),
    };

    /// <param name="images">[b_r, D] this rank's L2-normalised image features, detached.</param>
    /// <param name="texts">[b_r, D] this rank's L2-normalised text features, detached.</param>
    /// <param name="logitScale">The temperature parameter t.</param>
    /// <param name="logitBias">The bias parameter, for the sigmoid loss.</param>
    /// <param name="previous">This rank's collective waits in its previous step, exchanged on the stage's first collective (null: none).</param>
    public LossOutput Compute(Tensor images, Tensor texts, Tensor logitScale, Tensor? logitBias, CollectiveWaits? previous, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(logitScale);
        if (images.ndim != 2 || !images.shape.SequenceEqual(texts.shape))
        {
            throw new ArgumentException(
                $"local features must both be [b, D], got [{string.Join(", ", images.shape)}] and [{string.Join(", ", texts.shape)}]");
        }

        _communication.Reset();
        using var noGrad = no_grad();
        var headers = Communicate(() => Collectives.GatherRowCounts(images.shape[0], images.shape[1], previous, ct));
        var rows = headers.Rows;
        long total = rows.Sum(r => (long)r);
        if (total >= 1 << 24)
        {
            // Counts and indices travel as float32, exact below 2^24.
            throw new ArgumentOutOfRangeException(nameof(images), $"a global batch of {total} pairs exceeds the loss stage's limit of {1 << 24}.");
        }

        var output = Compute(images, texts, logitScale.detach(), logitBias?.detach(), rows, ct);
        return output with { CommunicationSeconds = _communication.Elapsed.TotalSeconds, PreviousWaits = headers.PreviousWaits };
    }

    /// <summary>The stage proper; <paramref name="rows"/> holds every rank's b_j.</summary>
    protected abstract LossOutput Compute(Tensor images, Tensor texts, Tensor logitScale, Tensor? logitBias, int[] rows, CancellationToken ct);

    /// <summary>Runs a collective, counting its time as communication.</summary>
    protected T Communicate<T>(Func<T> collective)
    {
        _communication.Start();
        try
        {
            return collective();
        }
        finally
        {
            _communication.Stop();
        }
    }

    /// <summary>
    /// Sums the loss and both directions' correct counts over ranks: (loss sum, image→text correct,
    /// text→image correct), each the same on every rank.
    /// </summary>
    protected (double LossSum, double ImageToText, double TextToImage) SumStatistics(Tensor lossSum, Tensor imageToText, Tensor textToImage, CancellationToken ct)
    {
        var values = new[] { (float)lossSum.item<double>(), (float)imageToText.item<long>(), (float)textToImage.item<long>() };
        Communicate(() =>
        {
            Collectives.AllReduceSum(values, ct);
            return values;
        });
        return (values[0], values[1], values[2]);
    }

    /// <summary>Global index of rank <paramref name="rank"/>'s first row.</summary>
    protected static long Offset(int[] rows, int rank) => rows.Take(rank).Sum(r => (long)r);
}

namespace DistClip.Data;

/// <summary>
/// Where a data stream stands: the batch <see cref="BatchInEpoch"/> of epoch <see cref="Epoch"/>.
/// Saved in checkpoints; with the same sampler settings it resumes the exact batch sequence.
/// Advance with <see cref="GlobalBatchSampler.Next"/>.
/// </summary>
public readonly record struct SamplerCursor(int Epoch, long BatchInEpoch)
{
    public static SamplerCursor Start => default;

    public override string ToString() => $"epoch {Epoch}, batch {BatchInEpoch}";
}

namespace DistClip.Checkpoints;

/// <summary>
/// One field that differs between the checkpoint's config and the current one.
/// </summary>
/// <param name="Path">Dotted path with array indices, e.g. <c>model.vision.width</c> or <c>augment[1]</c>.</param>
/// <param name="Checkpoint">The stored value as canonical JSON, or null where the field is absent.</param>
/// <param name="Now">The current value as canonical JSON, or null where the field is absent.</param>
public sealed record ConfigDifference(string Path, string? Checkpoint, string? Now)
{
    /// <summary>For example <c>global_batch: checkpoint 256, now 128</c>.</summary>
    public override string ToString() =>
        $"{Path}: checkpoint {Checkpoint ?? "(absent)"}, now {Now ?? "(absent)"}";
}

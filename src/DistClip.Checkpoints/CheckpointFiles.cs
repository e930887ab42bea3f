namespace DistClip.Checkpoints;

/// <summary>
/// The conventional file names inside a step directory. <see cref="Model"/> and <see cref="Optimizer"/>
/// are what the trainer passes to <see cref="CheckpointStore.Commit"/>; the library writes
/// <see cref="State"/> and <see cref="Manifest"/> itself.
/// </summary>
public static class CheckpointFiles
{
    /// <summary>Model weights, written by the training side (DistClip.Training.Checkpointing.ModelState).</summary>
    public const string Model = "model.bin";

    /// <summary>Optimizer state, written by the training side (DistClip.Training.Checkpointing.OptimizerState).</summary>
    public const string Optimizer = "optimizer.bin";

    /// <summary>The caller's JSON document plus <c>step</c>, <c>config</c> and <c>config_hash</c>.</summary>
    public const string State = "state.json";

    /// <summary>One line per other file: <c>sha256  size  name</c>; written last.</summary>
    public const string Manifest = "MANIFEST";
}

namespace DistClip.Training;

/// <summary>Where a <see cref="TrainingSession"/> is, for heartbeats (the worker maps it to the control protocol's phase).</summary>
public enum TrainingPhase
{
    /// <summary>Building the model, loading a checkpoint or receiving rank 0's weights.</summary>
    Loading,

    /// <summary>Waiting for the next batch from the data loader.</summary>
    Data,

    /// <summary>In a training step, where no finer phase is known (a trainer between steps).</summary>
    Step,

    /// <summary>Writing a checkpoint.</summary>
    Checkpoint,

    /// <summary>Evaluating on the held-out split.</summary>
    Evaluate,

    /// <summary>Past the last step.</summary>
    Finished,

    /// <summary>The step's forward pass through both towers (no peer involved).</summary>
    Forward,

    /// <summary>The loss stage: the features' all-gather and their gradients' reduce-scatter, or the sigmoid loss's shifts (waits on peers).</summary>
    Exchange,

    /// <summary>Backward through the towers (no peer involved).</summary>
    Backward,

    /// <summary>The gradients' all-reduce (waits on peers).</summary>
    Reduce,

    /// <summary>Clipping, the optimizer step and the temperature clamp (no peer involved).</summary>
    Optimizer,
}

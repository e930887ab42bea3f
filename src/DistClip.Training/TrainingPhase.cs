namespace DistClip.Training;

/// <summary>Where a <see cref="TrainingSession"/> is, for heartbeats (the worker maps it to the control protocol's phase).</summary>
public enum TrainingPhase
{
    /// <summary>Building the model, loading a checkpoint or receiving rank 0's weights.</summary>
    Loading,

    /// <summary>Waiting for the next batch from the data loader.</summary>
    Data,

    /// <summary>In a training step: forward, the collectives, backward, the optimizer.</summary>
    Step,

    /// <summary>Writing a checkpoint.</summary>
    Checkpoint,

    /// <summary>Evaluating on the held-out split.</summary>
    Evaluate,

    /// <summary>Past the last step.</summary>
    Finished,
}

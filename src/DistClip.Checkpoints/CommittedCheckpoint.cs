namespace DistClip.Checkpoints;

/// <summary>A checkpoint that is durable on disk and named by <c>latest</c>.</summary>
/// <param name="Step">The optimizer step it captures.</param>
/// <param name="Directory">The full path of its step directory.</param>
/// <param name="Bytes">Total size of every file in it, MANIFEST included.</param>
/// <param name="Duration">Wall time of the whole commit, fsyncs and pruning included.</param>
public sealed record CommittedCheckpoint(long Step, string Directory, long Bytes, TimeSpan Duration);

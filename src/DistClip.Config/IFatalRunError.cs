namespace DistClip.Config;

/// <summary>
/// An error that a restart cannot fix: a setting refused, training that diverged, checkpoints that
/// cannot be written. A worker that fails with one reports it as fatal and the coordinator ends the
/// run at once, naming it, instead of replacing the worker until its restarts run out. An exception
/// type opts in by implementing this interface; it has no members.
/// </summary>
public interface IFatalRunError;

namespace DistClip.Cli.CommandLine;

/// <summary>The command line cannot be run as given (unknown option, missing value); exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>
/// The request is well formed but refused (an index from another model, a corrupt file, a missing
/// checkpoint); exit code 1. The message is the whole explanation shown to the user.
/// </summary>
internal sealed class RefusedException(string message, Exception? inner = null) : Exception(message, inner);

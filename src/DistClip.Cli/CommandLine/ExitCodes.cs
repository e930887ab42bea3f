namespace DistClip.Cli.CommandLine;

internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>Refused or failed: a corrupt or mismatched index, a missing checkpoint, undecodable input images.</summary>
    public const int Failed = 1;

    /// <summary>The command line itself is wrong.</summary>
    public const int Usage = 2;

    public const int Interrupted = 130;
}

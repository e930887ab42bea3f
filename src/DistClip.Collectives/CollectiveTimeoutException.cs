namespace DistClip.Collectives;

/// <summary>An operation did not finish within <see cref="CollectiveOptions.OperationTimeout"/>.</summary>
public sealed class CollectiveTimeoutException : CollectiveException
{
    public CollectiveTimeoutException(
        string message, CollectiveOperation operation, long sequence, PeerInfo? peer, TimeSpan timeout)
        : base(message, operation, sequence, peer)
    {
        Timeout = timeout;
    }

    public TimeSpan Timeout { get; }
}

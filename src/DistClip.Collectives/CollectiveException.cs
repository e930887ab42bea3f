namespace DistClip.Collectives;

/// <summary>
/// A collective operation failed. The message names the operation and, where one is to blame, the
/// peer. The group that threw it is faulted; see <see cref="ICollectiveGroup"/>.
/// </summary>
public class CollectiveException : Exception
{
    public CollectiveException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }

    public CollectiveException(
        string message, CollectiveOperation operation, long sequence, PeerInfo? peer, Exception? innerException = null)
        : base(message, innerException)
    {
        Operation = operation;
        Sequence = sequence;
        Peer = peer;
    }

    public CollectiveOperation Operation { get; }

    /// <summary>The operation's sequence number within its generation (0 when none was running).</summary>
    public long Sequence { get; }

    /// <summary>The neighbour that failed or was being waited on, if any.</summary>
    public PeerInfo? Peer { get; }
}

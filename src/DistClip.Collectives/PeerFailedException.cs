namespace DistClip.Collectives;

/// <summary>A neighbour disconnected, died, refused the link or aborted its side of the ring.</summary>
public sealed class PeerFailedException : CollectiveException
{
    public PeerFailedException(string message, PeerInfo peer, Exception? innerException = null)
        : base(message, CollectiveOperation.Unspecified, 0, peer, innerException)
    {
    }

    public PeerFailedException(
        string message, CollectiveOperation operation, long sequence, PeerInfo peer, Exception? innerException)
        : base(message, operation, sequence, peer, innerException)
    {
    }
}

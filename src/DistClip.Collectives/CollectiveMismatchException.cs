namespace DistClip.Collectives;

/// <summary>
/// A frame did not belong to the operation being run: another generation (stale or newer), another
/// sequence number or operation, out of order, or of the wrong size. It was not applied.
/// </summary>
public sealed class CollectiveMismatchException : CollectiveException
{
    public CollectiveMismatchException(
        string message, CollectiveOperation operation, long sequence, PeerInfo? peer, string field, string expected, string actual)
        : base(message, operation, sequence, peer)
    {
        Field = field;
        Expected = expected;
        Actual = actual;
    }

    /// <summary>
    /// Which header field disagreed: generation, sequence, operation, index or length; or size, when a
    /// shift's announced block size differs from the receiver's (<see cref="Expected"/> and <see cref="Actual"/> in elements).
    /// </summary>
    public string Field { get; }

    public string Expected { get; }

    public string Actual { get; }
}

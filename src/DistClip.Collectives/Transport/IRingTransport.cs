namespace DistClip.Collectives.Transport;

/// <summary>
/// One rank's two links on the ring: frames go to the right neighbour (rank + 1) and come from the
/// left one (rank - 1). The ring algorithms need nothing else, so every transport runs the same ones.
/// </summary>
/// <remarks>
/// Frames on a link arrive in the order they were sent. A broken link surfaces as a
/// <see cref="PeerFailedException"/> naming the neighbour, from the pending call and every later one.
/// </remarks>
public interface IRingTransport : IAsyncDisposable
{
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>Where frames come from: rank (Rank - 1) mod WorldSize.</summary>
    PeerInfo Left { get; }

    /// <summary>Where frames go: rank (Rank + 1) mod WorldSize.</summary>
    PeerInfo Right { get; }

    /// <summary>
    /// Sends one frame to the right neighbour. <paramref name="payload"/> must not change until the
    /// returned task completes; after that the transport no longer reads it.
    /// </summary>
    ValueTask SendAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken);

    /// <summary>Receives the next frame from the left neighbour.</summary>
    ValueTask<RingFrame> ReceiveAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Tears both links down at once, so both neighbours' pending operations fail. Idempotent; the
    /// transport is unusable afterwards.
    /// </summary>
    void Abort(Exception reason);
}

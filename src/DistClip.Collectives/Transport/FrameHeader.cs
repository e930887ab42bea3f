namespace DistClip.Collectives.Transport;

/// <summary>Carried by every frame; see <c>distclip.v1.FrameHeader</c>.</summary>
/// <param name="Index">Position of the frame within its operation on one link (0, 1, ...).</param>
public readonly record struct FrameHeader(
    long Generation, long Sequence, CollectiveOperation Operation, int Index, int PayloadLength);

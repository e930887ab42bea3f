namespace DistClip.Collectives;

/// <summary>The operation a frame belongs to; values match <c>distclip.v1.CollectiveOperation</c>.</summary>
public enum CollectiveOperation
{
    Unspecified = 0,
    AllReduce = 1,
    AllGather = 2,
    Broadcast = 3,
    Barrier = 4,
    ReduceScatter = 5,
    Shift = 6,
}

namespace DistClip.Collectives.Grpc;

internal enum LinkRefusal
{
    WrongSecret,
    WrongToken,
    StaleGeneration,
    NotANeighbour,
    NoSuchGroup,
    AlreadyConnected,
    Malformed,
}

/// <summary>A neighbour's link was refused; the service maps the reason to a gRPC status.</summary>
internal sealed class LinkRefusedException(LinkRefusal reason, string message) : Exception(message)
{
    public LinkRefusal Reason { get; } = reason;
}

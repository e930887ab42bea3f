using DistClip.Collectives.Ring;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Collectives.InMemory;

/// <summary>
/// Builds an in-process ring of groups that run the same algorithms as a real transport: for unit
/// tests of training code (a fake cluster) and of the algorithms themselves.
/// </summary>
public static class InMemoryCollectives
{
    /// <summary>Groups for ranks 0 .. <paramref name="worldSize"/> - 1, in rank order.</summary>
    public static ICollectiveGroup[] CreateGroups(
        int worldSize, long generation = 1, CollectiveOptions? options = null, TimeProvider? timeProvider = null,
        ILoggerFactory? loggerFactory = null)
    {
        var transports = CreateTransports(worldSize);
        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<RingCollectiveGroup>();
        return transports
            .Select(t => (ICollectiveGroup)new RingCollectiveGroup(t, generation, options ?? new CollectiveOptions(), timeProvider, logger))
            .ToArray();
    }

    /// <summary>The connected transports of a ring; frames per link are buffered up to a few chunks.</summary>
    internal static InMemoryRingTransport[] CreateTransports(int worldSize, int linkCapacity = 4)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        var transports = Enumerable.Range(0, worldSize)
            .Select(r => new InMemoryRingTransport(r, worldSize, linkCapacity))
            .ToArray();
        for (int r = 0; r < worldSize; r++)
        {
            transports[r].ConnectTo(transports[(r + 1) % worldSize]);
        }

        return transports;
    }
}

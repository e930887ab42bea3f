using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using DistClip.Collectives.Transport;
using DistClip.Logging;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace DistClip.Collectives.Grpc;

/// <summary>What a neighbour's call says about itself (its metadata).</summary>
internal sealed record LinkRequest(string? Secret, string? Generation, string? Rank, string? WorldSize, string? RankToken, string Endpoint);

/// <summary>
/// Admits incoming links: checks the secret, refuses stale generations and strangers, and hands the
/// call to the group of its generation (waiting a bounded time for that group to be created, since
/// a neighbour may join a moment earlier) once the call presents the rank token the coordinator told
/// that group to expect from its left neighbour. A link claiming a generation this endpoint has not
/// been assigned has nothing to match until (unless) the group exists: it is refused, at the latest
/// when the connect timeout passes.
/// </summary>
internal sealed class LinkAcceptor
{
    private readonly byte[] _secretHash;
    private readonly TimeSpan _connectTimeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LogRateLimiter _refusals;
    private readonly ConcurrentDictionary<long, TaskCompletionSource<IncomingLink>> _links = new();
    private long _newestGeneration = -1;

    public LinkAcceptor(string secret, TimeSpan connectTimeout, TimeProvider time, ILogger logger)
    {
        _secretHash = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
        _connectTimeout = connectTimeout;
        _time = time;
        _logger = logger;
        _refusals = new LogRateLimiter(GrpcLog.LimitLines, GrpcLog.LimitInterval, time);
    }

    /// <summary>The rate limit shared by every line a stranger can cause (refusals here, and the listener's).</summary>
    public LogRateLimiter Refusals => _refusals;

    /// <summary>Opens the incoming side of a new group; older generations are refused from now on.</summary>
    public IncomingLink Register(long generation, int rank, int worldSize, PeerInfo left, byte[] leftToken)
    {
        long newest;
        do
        {
            newest = Interlocked.Read(ref _newestGeneration);
            if (generation < newest)
            {
                throw new ArgumentException($"Generation {generation} is older than this endpoint's newest ({newest}).", nameof(generation));
            }
        }
        while (Interlocked.CompareExchange(ref _newestGeneration, generation, newest) != newest);

        var link = new IncomingLink(generation, rank, worldSize, left, leftToken);
        if (!Slot(generation).TrySetResult(link))
        {
            throw new InvalidOperationException($"This endpoint already has a group of generation {generation}.");
        }

        return link;
    }

    public void Unregister(IncomingLink link)
    {
        if (_links.TryGetValue(link.Generation, out var slot) && slot.Task.IsCompletedSuccessfully && slot.Task.Result == link)
        {
            _links.TryRemove(link.Generation, out _);
        }
    }

    /// <summary>Aborts every link this endpoint serves (it is stopping).</summary>
    public void CloseAll()
    {
        Interlocked.Exchange(ref _newestGeneration, long.MaxValue);
        foreach (var slot in _links.Values)
        {
            if (slot.Task.IsCompletedSuccessfully)
            {
                slot.Task.Result.Close(new ObjectDisposedException(nameof(GrpcCollectiveEndpoint), "The collectives endpoint is stopping."));
            }
        }
    }

    /// <summary>Runs one neighbour's call; refusals throw <see cref="LinkRefusedException"/>.</summary>
    public async Task ServeAsync(
        LinkRequest request, IAsyncStreamReader<RingFrame> frames, Func<Task> accept, CancellationToken callAborted)
    {
        if (request.Secret is null
            || !CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(request.Secret)), _secretHash))
        {
            throw Refuse(LinkRefusal.WrongSecret, $"{request.Endpoint} presented a wrong or missing secret.");
        }

        long generation = Parse(request.Generation, LinkHeaders.Generation);
        int rank = (int)Parse(request.Rank, LinkHeaders.Rank);
        int worldSize = (int)Parse(request.WorldSize, LinkHeaders.WorldSize);
        if (generation < Interlocked.Read(ref _newestGeneration))
        {
            throw Refuse(LinkRefusal.StaleGeneration,
                $"rank {rank} at {request.Endpoint} offered stale generation {generation}; this endpoint is at {_newestGeneration}.");
        }

        IncomingLink link;
        try
        {
            link = await Slot(generation).Task.WaitAsync(_connectTimeout, _time, callAborted).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _links.TryRemove(generation, out _);
            throw Refuse(LinkRefusal.NoSuchGroup, $"No group of generation {generation} was created here within {_connectTimeout}.");
        }

        // The token before the layout: it alone says who is calling (the rank and world size are claims).
        if (!TokenMatches(request.RankToken, link.LeftToken))
        {
            throw Refuse(LinkRefusal.WrongToken,
                $"{request.Endpoint} presented a token that does not match rank {link.Left.Rank} generation {generation}.");
        }

        if (rank != link.Left.Rank || worldSize != link.WorldSize)
        {
            throw Refuse(LinkRefusal.NotANeighbour,
                $"rank {rank} of {worldSize} is not the left neighbour of rank {link.Rank} of {link.WorldSize} (expected rank {link.Left.Rank}).");
        }

        GrpcLog.LinkAccepted(_logger, link.Rank, rank, generation);
        await link.PumpAsync(frames, accept, callAborted).ConfigureAwait(false);
    }

    /// <summary>Constant-time in the token's bytes; a header that is not hex of the right length never matches.</summary>
    private static bool TokenMatches(string? presented, byte[] expected)
    {
        if (presented is null || presented.Length != 2 * expected.Length)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[RingTokens.MaxBytes];
        var decoded = bytes[..expected.Length];
        return Convert.FromHexString(presented, decoded, out _, out int written) == System.Buffers.OperationStatus.Done
            && written == expected.Length
            && CryptographicOperations.FixedTimeEquals(decoded, expected);
    }

    private long Parse(string? value, string header) =>
        long.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long result)
            ? result
            : throw Refuse(LinkRefusal.Malformed, $"Header {header} is missing or not an integer.");

    private TaskCompletionSource<IncomingLink> Slot(long generation) =>
        _links.GetOrAdd(generation, _ => new TaskCompletionSource<IncomingLink>(TaskCreationOptions.RunContinuationsAsynchronously));

    private LinkRefusedException Refuse(LinkRefusal reason, string message)
    {
        _refusals.Limited(_logger, logger => GrpcLog.LinkRefused(logger, reason, message));
        return new LinkRefusedException(reason, message);
    }
}

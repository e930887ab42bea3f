using System.Threading.Channels;
using DistClip.Collectives.Transport;
using Grpc.Core;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// The link from the left neighbour, as this rank's endpoint serves it: the server call pumps frames
/// into a small bounded queue (so HTTP/2 flow control is the back-pressure) and the group reads them.
/// The pump runs whether or not an operation is waiting, so a broken link is seen at once.
/// </summary>
internal sealed class IncomingLink
{
    private readonly Channel<RingFrame> _frames = Channel.CreateBounded<RingFrame>(
        new BoundedChannelOptions(4) { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource _attached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _closed = new();
    private Exception? _closeReason;

    public IncomingLink(long generation, int rank, int worldSize, PeerInfo left, byte[] leftToken)
    {
        Generation = generation;
        Rank = rank;
        WorldSize = worldSize;
        Left = left;
        LeftToken = leftToken;
    }

    public long Generation { get; }

    public int Rank { get; }

    public int WorldSize { get; }

    public PeerInfo Left { get; }

    /// <summary>The rank token the left neighbour must present for this generation.</summary>
    public byte[] LeftToken { get; }

    /// <summary>Set by the transport: told of a break at once, so a pending operation fails even if it waits elsewhere.</summary>
    public Action<PeerFailedException>? Broken { get; set; }

    public Task Attached => _attached.Task;

    /// <summary>Serves the left neighbour's call until it ends or this rank closes the link.</summary>
    /// <exception cref="LinkClosedException">This rank aborted the link.</exception>
    public async Task PumpAsync(IAsyncStreamReader<RingFrame> frames, Func<Task> accept, CancellationToken callAborted)
    {
        if (!_attached.Task.IsCompleted)
        {
            await accept().ConfigureAwait(false);
        }

        if (!_attached.TrySetResult())
        {
            throw new LinkRefusedException(LinkRefusal.AlreadyConnected,
                $"rank {Rank} already has a link from {Left} for generation {Generation}.");
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(callAborted, _closed.Token);
        try
        {
            while (await frames.MoveNext(linked.Token).ConfigureAwait(false))
            {
                var frame = frames.Current;
                if (!_frames.Writer.TryWrite(frame))
                {
                    try
                    {
                        await _frames.Writer.WriteAsync(frame, linked.Token).ConfigureAwait(false);
                    }
                    catch
                    {
                        frame.Dispose();
                        throw;
                    }
                }
            }

            Fail(new PeerFailedException($"{Left} closed its link to rank {Rank}.", Left));
        }
        catch (Exception) when (_closed.IsCancellationRequested)
        {
            if (_closeReason is not null)
            {
                throw new LinkClosedException($"rank {Rank} aborted the link from {Left}: {_closeReason.Message}");
            }
        }
        catch (Exception ex)
        {
            Fail(new PeerFailedException($"The link from {Left} to rank {Rank} broke: {ex.Message}", Left, ex));
        }
    }

    public async ValueTask<RingFrame> ReceiveAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _frames.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException ex)
        {
            throw ex.InnerException as PeerFailedException
                ?? new PeerFailedException($"The link from {Left} is closed.", Left, ex);
        }
    }

    /// <summary>Ends the link: with a reason, the left neighbour's call fails (Aborted); without, it ends quietly.</summary>
    public void Close(Exception? reason)
    {
        _closeReason ??= reason;
        _frames.Writer.TryComplete(new PeerFailedException($"rank {Rank} closed its link from {Left}.", Left, reason));
        _attached.TrySetCanceled();
        _closed.Cancel();
        while (_frames.Reader.TryRead(out var frame))
        {
            frame.Dispose();
        }
    }

    private void Fail(PeerFailedException failure)
    {
        _frames.Writer.TryComplete(failure);
        Broken?.Invoke(failure);
    }
}

internal sealed class LinkClosedException(string message) : Exception(message);

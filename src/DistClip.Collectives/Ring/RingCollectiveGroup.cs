using System.Buffers;
using System.Runtime.InteropServices;
using DistClip.Collectives.Transport;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Collectives.Ring;

/// <summary>
/// <see cref="ICollectiveGroup"/> over any <see cref="IRingTransport"/>: numbers the operations,
/// bounds each by <see cref="CollectiveOptions.OperationTimeout"/>, and faults the group (aborting
/// both links) on the first failure so that the neighbours fail fast too.
/// </summary>
public sealed class RingCollectiveGroup : ICollectiveGroup
{
    private readonly IRingTransport _transport;
    private readonly CollectiveOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _aborted = new();
    private long _sequence;
    private Exception? _fault;
    private int _disposed;

    public RingCollectiveGroup(
        IRingTransport transport, long generation, CollectiveOptions options, TimeProvider? timeProvider = null,
        ILogger<RingCollectiveGroup>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _transport = transport;
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger<RingCollectiveGroup>.Instance;
        Generation = generation;
        Log.GroupReady(_logger, Rank, WorldSize, generation, transport.Left, transport.Right);
    }

    public int Rank => _transport.Rank;

    public int WorldSize => _transport.WorldSize;

    public long Generation { get; }

    public Task AllReduceSumAsync(Memory<float> data, CancellationToken cancellationToken) =>
        RunAsync(CollectiveOperation.AllReduce, data.Length * 4L,
            op => RingAlgorithms.AllReduceSumAsync(op, CastMemoryManager<float, byte>.Cast(data)), cancellationToken);

    public async Task AllReduceSumAsync(IReadOnlyList<Memory<float>> buffers, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        if (buffers.Count == 1)
        {
            await AllReduceSumAsync(buffers[0], cancellationToken).ConfigureAwait(false);
            return;
        }

        // One flat staging buffer: one frame grid and one set of N - 1 steps for all of them,
        // at the price of two memory copies (far cheaper than the network).
        int total = 0;
        foreach (var buffer in buffers)
        {
            total = checked(total + buffer.Length);
        }

        var flat = ArrayPool<float>.Shared.Rent(Math.Max(total, 1));
        try
        {
            int offset = 0;
            foreach (var buffer in buffers)
            {
                buffer.Span.CopyTo(flat.AsSpan(offset));
                offset += buffer.Length;
            }

            await AllReduceSumAsync(flat.AsMemory(0, total), cancellationToken).ConfigureAwait(false);
            offset = 0;
            foreach (var buffer in buffers)
            {
                flat.AsSpan(offset, buffer.Length).CopyTo(buffer.Span);
                offset += buffer.Length;
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(flat);
        }
    }

    public Task AllGatherAsync(ReadOnlyMemory<float> local, Memory<float> output, CancellationToken cancellationToken)
    {
        var counts = new int[WorldSize];
        Array.Fill(counts, local.Length);
        return AllGatherAsync(local, output, counts, cancellationToken);
    }

    public Task AllGatherAsync(
        ReadOnlyMemory<float> local, Memory<float> output, IReadOnlyList<int> counts, CancellationToken cancellationToken)
    {
        var blocks = CountedBlocks(counts, out long total);
        if (local.Length != counts[Rank])
        {
            throw new ArgumentException($"local has {local.Length} elements; counts[{Rank}] is {counts[Rank]}.", nameof(local));
        }

        if (output.Length * 4L != total)
        {
            throw new ArgumentException($"output has {output.Length} elements; the counts add up to {total / 4}.", nameof(output));
        }

        return RunAsync(CollectiveOperation.AllGather, total, op =>
        {
            var bytes = CastMemoryManager<float, byte>.Cast(output);
            MemoryMarshal.AsBytes(local.Span).CopyTo(bytes.Span.Slice((int)blocks[Rank].Offset));
            return RingAlgorithms.AllGatherAsync(op, bytes, blocks);
        }, cancellationToken);
    }

    public Task ReduceScatterSumAsync(Memory<float> data, IReadOnlyList<int> counts, CancellationToken cancellationToken)
    {
        var blocks = CountedBlocks(counts, out long total);
        if (data.Length * 4L != total)
        {
            throw new ArgumentException($"data has {data.Length} elements; the counts add up to {total / 4}.", nameof(data));
        }

        return RunAsync(CollectiveOperation.ReduceScatter, total,
            op => RingAlgorithms.ReduceScatterSumAsync(op, CastMemoryManager<float, byte>.Cast(data), blocks), cancellationToken);
    }

    public Task ShiftAsync(ReadOnlyMemory<float> send, Memory<float> receive, CancellationToken cancellationToken)
    {
        // With one rank the left neighbour is this one, so its size is known here.
        if (WorldSize == 1 && receive.Length != send.Length)
        {
            throw new ArgumentException(
                $"receive has {receive.Length} elements; with one rank it receives its own send of {send.Length}.", nameof(receive));
        }

        return RunAsync(CollectiveOperation.Shift, send.Length * 4L, op => RingAlgorithms.ShiftAsync(
            op, CastMemoryManager<float, byte>.Cast(MemoryMarshal.AsMemory(send)), CastMemoryManager<float, byte>.Cast(receive)),
            cancellationToken);
    }

    public Task BroadcastAsync(Memory<float> data, int root, CancellationToken cancellationToken) =>
        BroadcastAsync(CastMemoryManager<float, byte>.Cast(data), root, cancellationToken);

    public Task BroadcastAsync(Memory<byte> data, int root, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        return RunAsync(CollectiveOperation.Broadcast, data.Length,
            op => RingAlgorithms.BroadcastAsync(op, data, root), cancellationToken);
    }

    public Task BarrierAsync(CancellationToken cancellationToken)
    {
        // An all-reduce is a barrier: every rank's result depends on every rank's contribution.
        var token = new float[] { 1f };
        return RunAsync(CollectiveOperation.Barrier, sizeof(float), async op =>
        {
            await RingAlgorithms.AllReduceSumAsync(op, CastMemoryManager<float, byte>.Cast(token.AsMemory()))
                .ConfigureAwait(false);
            if (token[0] != WorldSize)
            {
                throw new CollectiveException($"Barrier #{op.Sequence} counted {token[0]} ranks, not {WorldSize}.");
            }
        }, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // A running operation fails promptly once aborted; wait for it so nothing uses the links after this.
        _aborted.Cancel();
        await _gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            await _transport.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task RunAsync(
        CollectiveOperation operation, long bytes, Func<RingOp, Task> body, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            if (_fault is not null)
            {
                throw new CollectiveException(
                    $"{operation} refused on rank {Rank}: the group of generation {Generation} is faulted by an earlier failure. "
                    + "Build a group for the next generation.", _fault);
            }

            long sequence = ++_sequence;
            long started = _time.GetTimestamp();
            using var timeout = new CancellationTokenSource(_options.OperationTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token, _aborted.Token);
            var op = new RingOp(_transport, Generation, sequence, operation, _options.ChunkBytes, linked);
            try
            {
                await body(op).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                var error = Explain(ex, op, cancellationToken, timeout.IsCancellationRequested);
                _fault = error;
                Log.OperationFailed(_logger, Rank, operation, sequence, Generation, error);
                CollectiveMetrics.Record(operation, succeeded: false, op.BytesSent, _time.GetElapsedTime(started));
                _transport.Abort(error);
                if (error is OperationCanceledException)
                {
                    throw;
                }

                throw error;
            }

            var elapsed = _time.GetElapsedTime(started);
            CollectiveMetrics.Record(operation, succeeded: true, op.BytesSent, elapsed);
            Log.OperationCompleted(_logger, Rank, operation, sequence, bytes, elapsed.TotalMilliseconds);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Byte blocks of <c>counts[r]</c> floats for rank r, in rank order, and their total bytes.</summary>
    private Partition.Block[] CountedBlocks(IReadOnlyList<int> counts, out long totalBytes)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (counts.Count != WorldSize)
        {
            throw new ArgumentException($"counts has {counts.Count} entries; the world size is {WorldSize}.", nameof(counts));
        }

        var blocks = Partition.Consecutive(counts, sizeof(float));
        totalBytes = blocks[^1].Offset + blocks[^1].Length;
        return blocks;
    }

    /// <summary>Turns whatever ended an operation into the error that names the operation and the peer.</summary>
    private Exception Explain(Exception ex, RingOp op, CancellationToken callerToken, bool timedOut)
    {
        string what = $"{op.Operation} #{op.Sequence} (generation {Generation}) on rank {Rank} of {WorldSize}";
        return ex switch
        {
            CollectiveMismatchException => ex,
            PeerFailedException peer => new PeerFailedException(
                $"{what} failed on the link with {peer.Peer}: {peer.Message}", op.Operation, op.Sequence, peer.Peer!, peer),
            OperationCanceledException when callerToken.IsCancellationRequested => ex,
            OperationCanceledException when timedOut => new CollectiveTimeoutException(
                $"{what} timed out after {_options.OperationTimeout} waiting on {op.BlockedOn}.",
                op.Operation, op.Sequence, op.BlockedOn, _options.OperationTimeout),
            OperationCanceledException when _aborted.IsCancellationRequested => new CollectiveException(
                $"{what} was aborted: the group was disposed.", ex),
            _ => new CollectiveException($"{what} failed: {ex.Message}", op.Operation, op.Sequence, null, ex),
        };
    }
}

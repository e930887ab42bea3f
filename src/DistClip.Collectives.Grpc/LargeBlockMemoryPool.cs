using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace DistClip.Collectives.Grpc;

/// <summary>
/// Kestrel's memory pool with large blocks. Kestrel reads sockets into pool blocks; with its default
/// 4 KiB blocks a 1 MiB chunk arrives as 256 segments, and the receiver's CPU, not the network, sets
/// the pace on loopback. Blocks are pinned arrays, reused, and a bounded number are kept.
/// </summary>
internal sealed class LargeBlockMemoryPoolFactory(int blockBytes) : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockMemoryPool(blockBytes);
}

internal sealed class LargeBlockMemoryPool(int blockBytes) : MemoryPool<byte>
{
    private const int MaxRetainedBytes = 64 << 20;
    private readonly ConcurrentQueue<Block> _free = new();
    private int _retained;

    public override int MaxBufferSize => blockBytes;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, blockBytes);
        if (_free.TryDequeue(out var block))
        {
            Interlocked.Add(ref _retained, -blockBytes);
            return block;
        }

        return new Block(this, GC.AllocateUninitializedArray<byte>(blockBytes, pinned: true));
    }

    protected override void Dispose(bool disposing) => _free.Clear();

    private void Return(Block block)
    {
        if (Interlocked.Add(ref _retained, blockBytes) <= MaxRetainedBytes)
        {
            _free.Enqueue(block);
        }
        else
        {
            Interlocked.Add(ref _retained, -blockBytes);
        }
    }

    private sealed unsafe class Block(LargeBlockMemoryPool pool, byte[] array) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => array;

        // The array is allocated pinned: its address never changes.
        public override MemoryHandle Pin(int elementIndex = 0) =>
            new(System.Runtime.CompilerServices.Unsafe.AsPointer(ref array[elementIndex]));

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing) => pool.Return(this);
    }
}

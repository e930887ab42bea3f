using System.Buffers;
using System.Runtime.InteropServices;

namespace DistClip.Collectives.Transport;

/// <summary>Views a <see cref="Memory{T}"/> of floats as bytes without copying (spans only cast).</summary>
internal sealed unsafe class CastMemoryManager<TFrom, TTo> : MemoryManager<TTo>
    where TFrom : unmanaged
    where TTo : unmanaged
{
    private readonly Memory<TFrom> _from;

    private CastMemoryManager(Memory<TFrom> from) => _from = from;

    public static Memory<TTo> Cast(Memory<TFrom> from) =>
        from.IsEmpty ? Memory<TTo>.Empty : new CastMemoryManager<TFrom, TTo>(from).Memory;

    public override Span<TTo> GetSpan() => MemoryMarshal.Cast<TFrom, TTo>(_from.Span);

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        var inner = _from.Pin();
        // The returned handle owns the inner one through this manager's Unpin.
        _pinned = inner;
        return new MemoryHandle((TTo*)inner.Pointer + elementIndex, default, this);
    }

    private MemoryHandle _pinned;

    public override void Unpin() => _pinned.Dispose();

    protected override void Dispose(bool disposing)
    {
    }
}

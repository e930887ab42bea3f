using System.Numerics;
using System.Runtime.InteropServices;

namespace DistClip.Collectives.Ring;

internal static class FloatMath
{
    /// <summary>
    /// destination[i] += source[i]. IEEE addition is commutative and neither path fuses, so the
    /// vector and scalar loops give the same bits.
    /// </summary>
    public static void AddInPlace(Span<float> destination, ReadOnlySpan<float> source)
    {
        if (source.Length != destination.Length)
        {
            throw new ArgumentException("Source and destination lengths differ.", nameof(source));
        }

        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var dst = MemoryMarshal.Cast<float, Vector<float>>(destination);
            var src = MemoryMarshal.Cast<float, Vector<float>>(source);
            for (int v = 0; v < dst.Length; v++)
            {
                dst[v] += src[v];
            }

            i = dst.Length * Vector<float>.Count;
        }

        for (; i < destination.Length; i++)
        {
            destination[i] += source[i];
        }
    }
}

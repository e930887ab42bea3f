namespace DistClip.Data;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny PRNG whose output is fixed by its published
/// algorithm. Data order and captions must be identical across processes, machines and .NET
/// versions, which System.Random and System.HashCode do not promise.
/// </summary>
internal struct SplitMix64
{
    private ulong _state;

    public SplitMix64(ulong seed)
    {
        _state = seed;
    }

    /// <summary>A well-mixed 64-bit value from two inputs, e.g. (seed, epoch) or (captionSeed, index).</summary>
    public static ulong Hash(long a, long b)
    {
        var mixer = new SplitMix64(Finalise(unchecked((ulong)a)) ^ unchecked((ulong)b));
        return mixer.Next();
    }

    public ulong Next()
    {
        _state = unchecked(_state + 0x9E3779B97F4A7C15UL);
        return Finalise(_state);
    }

    /// <summary>Uniform in [0, bound) without modulo bias (Lemire's multiply-shift with rejection).</summary>
    public int NextBelow(int bound)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bound, 1);
        ulong range = (ulong)bound;
        ulong high = Math.BigMul(Next(), range, out ulong low);
        if (low < range)
        {
            ulong threshold = unchecked(0UL - range) % range;
            while (low < threshold)
            {
                high = Math.BigMul(Next(), range, out low);
            }
        }

        return (int)high;
    }

    private static ulong Finalise(ulong z)
    {
        unchecked
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}

namespace DistClip.Collectives.TestPeer;

/// <summary>
/// Deterministic test tensors: element i of rank r's input for a seed is a hash of (seed, r, i), so any
/// process can recompute any rank's input (and so the float64 reference) without exchanging it.
/// </summary>
public static class PeerData
{
    public static float Value(int seed, int rank, long index)
    {
        ulong z = ((ulong)(uint)seed << 40) ^ ((ulong)(uint)rank << 32) ^ (ulong)index;
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (float)((z >> 40) * (2.0 / (1UL << 24)) - 1.0); // [-1, 1), exact in float32
    }

    public static float[] Fill(int count, int seed, int rank)
    {
        var data = new float[count];
        for (int i = 0; i < count; i++)
        {
            data[i] = Value(seed, rank, i);
        }

        return data;
    }

    /// <summary>How many elements rank r sends in the <c>shift</c> command: different on every rank.</summary>
    public static int ShiftCount(int count, int rank) => count + rank;

    /// <summary>
    /// The largest |actual - reference| relative to the float32 bound N·2⁻²³·Σ|x| (≤ 1 passes), where
    /// <paramref name="actual"/> is the sum of the inputs' elements from <paramref name="offset"/> on.
    /// </summary>
    public static double WorstErrorRatio(ReadOnlySpan<float> actual, int seed, int worldSize, long offset = 0)
    {
        double worst = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double sum = 0, magnitude = 0;
            for (int r = 0; r < worldSize; r++)
            {
                double x = Value(seed, r, offset + i);
                sum += x;
                magnitude += Math.Abs(x);
            }

            double bound = worldSize * magnitude * Math.Pow(2, -23) + 1e-30;
            worst = Math.Max(worst, Math.Abs(actual[i] - sum) / bound);
        }

        return worst;
    }
}

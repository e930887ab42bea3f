using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace DistClip.Collectives.Tests;

internal static class TestData
{
    /// <summary>Deterministic floats in [-1, 1) for one rank's input.</summary>
    public static float[] Random(int count, int seed)
    {
        var rng = new Random(seed);
        var data = new float[count];
        for (int i = 0; i < count; i++)
        {
            data[i] = (float)(rng.NextDouble() * 2 - 1);
        }

        return data;
    }

    public static string Sha256(ReadOnlySpan<float> data) =>
        Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(data)));

    /// <summary>Asserts |actual - expected| ≤ N·2⁻²³·Σ|x| elementwise: float32 sum error bound, with slack.</summary>
    public static void AssertClose(float[][] inputs, float[] actual)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            double sum = 0, magnitude = 0;
            foreach (var input in inputs)
            {
                sum += input[i];
                magnitude += Math.Abs(input[i]);
            }

            double tolerance = inputs.Length * magnitude * Math.Pow(2, -23) + 1e-30;
            Assert.True(Math.Abs(actual[i] - sum) <= tolerance,
                $"element {i}: expected {sum:R} (float64 reference) ± {tolerance:E2}, got {actual[i]:R}");
        }
    }
}

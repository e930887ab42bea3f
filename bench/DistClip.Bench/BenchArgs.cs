using System.Globalization;

namespace DistClip.Bench;

/// <summary>The benchmark's command line: <c>SUITE [--threads 1,2] [--steps N] [--warmup N] [--batch N] [--model NAME] [--json FILE]</c>.</summary>
public sealed record BenchArgs(string Suite, int[] Threads, int Steps, int Warmup, int Batch, string Model, string? Json, bool StepsGiven = false)
{
    public static BenchArgs Parse(string[] args)
    {
        string suite = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "train";
        var result = new BenchArgs(suite, [1, 2], Steps: 20, Warmup: 3, Batch: 256, Model: "clip-tiny", Json: null);
        for (int i = suite == (args.Length > 0 ? args[0] : null) ? 1 : 0; i < args.Length; i++)
        {
            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
            result = args[i] switch
            {
                "--threads" => result with { Threads = value.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray() },
                "--steps" => result with { Steps = int.Parse(value, CultureInfo.InvariantCulture), StepsGiven = true },
                "--warmup" => result with { Warmup = int.Parse(value, CultureInfo.InvariantCulture) },
                "--batch" => result with { Batch = int.Parse(value, CultureInfo.InvariantCulture) },
                "--model" => result with { Model = value },
                "--json" => result with { Json = value },
                _ => throw new ArgumentException($"unknown option {args[i]}"),
            };
            i++;
        }

        return result;
    }
}

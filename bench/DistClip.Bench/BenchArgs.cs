using System.Globalization;

namespace DistClip.Bench;

/// <summary>
/// The benchmark's command line: <c>SUITE [--threads 1,2] [--steps N] [--warmup N] [--batch N] [--model NAME] [--json FILE]</c>,
/// for the memory suite <c>[--quick] [--rows NAME,...] [--row-minutes N]</c>, and for versus-pytorch <c>[--rounds N]</c>.
/// </summary>
public sealed record BenchArgs(string Suite, int[] Threads, int Steps, int Warmup, int Batch, string Model, string? Json, bool StepsGiven = false)
{
    /// <summary>Only the small rows of a suite that has large ones (memory: global batch 1,024 and 4,096).</summary>
    public bool Quick { get; init; }

    /// <summary>Only these rows, by name; null: all (after <see cref="Quick"/>).</summary>
    public IReadOnlyList<string>? Rows { get; init; }

    /// <summary>Faults the chaos drill injects.</summary>
    public int Faults { get; init; } = 10;

    /// <summary>Seed of the chaos drill's plan (which faults, when, to whom).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Whether --seed was given (suites other than chaos default to the launch's 42).</summary>
    public bool SeedGiven { get; init; }

    /// <summary>versus-pytorch-accuracy: zero-shot evaluation every this many steps.</summary>
    public int EvalEvery { get; init; } = 50;

    /// <summary>A row running longer than this is stopped and reported as a timeout.</summary>
    public double RowMinutes { get; init; } = 15;

    /// <summary>How many times the versus-pytorch suite runs each shape on each side, interleaved.</summary>
    public int Rounds { get; init; } = 2;

    public static BenchArgs Parse(string[] args)
    {
        string suite = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "train";
        var result = new BenchArgs(suite, [1, 2], Steps: 20, Warmup: 3, Batch: 256, Model: "clip-tiny", Json: null);
        for (int i = suite == (args.Length > 0 ? args[0] : null) ? 1 : 0; i < args.Length; i++)
        {
            if (args[i] == "--quick")
            {
                result = result with { Quick = true };
                continue;
            }

            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
            result = args[i] switch
            {
                "--threads" => result with { Threads = value.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray() },
                "--steps" => result with { Steps = int.Parse(value, CultureInfo.InvariantCulture), StepsGiven = true },
                "--warmup" => result with { Warmup = int.Parse(value, CultureInfo.InvariantCulture) },
                "--batch" => result with { Batch = int.Parse(value, CultureInfo.InvariantCulture) },
                "--model" => result with { Model = value },
                "--json" => result with { Json = value },
                "--rows" => result with { Rows = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--faults" => result with { Faults = int.Parse(value, CultureInfo.InvariantCulture) },
                "--seed" => result with { Seed = int.Parse(value, CultureInfo.InvariantCulture), SeedGiven = true },
                "--eval-every" => result with { EvalEvery = int.Parse(value, CultureInfo.InvariantCulture) },
                "--row-minutes" => result with { RowMinutes = double.Parse(value, CultureInfo.InvariantCulture) },
                "--rounds" => result with { Rounds = int.Parse(value, CultureInfo.InvariantCulture) },
                _ => throw new ArgumentException($"unknown option {args[i]}"),
            };
            i++;
        }

        return result;
    }
}

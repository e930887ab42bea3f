namespace DistClip.Collectives.Bench;

/// <summary>What the collectives suite measures; defaults are the table.</summary>
public sealed record CollectivesBenchOptions
{
    public string? JsonPath { get; init; }

    public IReadOnlyList<int> WorldSizes { get; init; } = [2, 3, 4];

    public IReadOnlyList<int> AllReduceBytes { get; init; } = [4 << 20, 64 << 20];

    /// <summary>Bytes streamed for the raw TCP ceiling, in 1 MiB writes, per repeat.</summary>
    public long TcpBytes { get; init; } = 1L << 30;

    /// <summary>How often the raw TCP figures are measured (the median is the reference): this machine's loopback varies run to run.</summary>
    public int TcpRepeats { get; init; } = 5;

    /// <summary>Total bytes each all-reduce size is repeated for (at least 3 timed runs).</summary>
    public long AllReduceVolumeBytes { get; init; } = 512L << 20;

    /// <summary>The embedding exchange of one step: 128 × 256 floats per rank.</summary>
    public int AllGatherFloats { get; init; } = 128 * 256;

    public int AllGatherIterations { get; init; } = 50;

    public static CollectivesBenchOptions Parse(string[] args)
    {
        var options = new CollectivesBenchOptions();
        for (int i = 0; i < args.Length; i++)
        {
            options = args[i] switch
            {
                "--json" when i + 1 < args.Length => options with { JsonPath = args[++i] },
                "--volume-mib" when i + 1 < args.Length => options with { AllReduceVolumeBytes = long.Parse(args[++i]) << 20 },
                "--n" when i + 1 < args.Length => options with { WorldSizes = args[++i].Split(',').Select(int.Parse).ToArray() },
                "--quick" => options with { TcpBytes = 256L << 20, TcpRepeats = 3, AllReduceVolumeBytes = 128L << 20, AllGatherIterations = 10 },
                _ => throw new ArgumentException($"Unknown argument '{args[i]}'. Usage: [--json FILE] [--quick] [--n 2,3,4] [--volume-mib MIB]"),
            };
        }

        return options;
    }
}

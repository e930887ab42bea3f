using System.Globalization;

namespace DistClip.Training.Faults;

/// <summary>What an injected fault does.</summary>
public enum FaultKind
{
    /// <summary>SIGKILL of the process itself: no cleanup, no last words.</summary>
    Kill,

    /// <summary>The training thread blocks for good; heartbeats go on from their timer, the step never advances.</summary>
    Stall,

    /// <summary>A NaN in this rank's local gradients before the all-reduce.</summary>
    Nan,

    /// <summary>The checkpoint write throws "No space left on device".</summary>
    WriteFail,

    /// <summary>An <see cref="InvalidOperationException"/>: an ordinary crash with a cause.</summary>
    Throw,
}

/// <summary>One fault of a plan: <see cref="Kind"/> at <see cref="Point"/> of steps <see cref="First"/>..<see cref="Last"/> on <see cref="Rank"/> (null: any).</summary>
public sealed record Fault(FaultKind Kind, long First, long Last, int? Rank, TrainingPhase Point, string Text)
{
    public bool Matches(TrainingPhase point, long step, int rank) =>
        point == Point && step >= First && step <= Last && (Rank is null || Rank == rank);

    public override string ToString() => Text;
}

/// <summary>
/// A list of faults to inject, in the grammar of the worker's <c>DISTCLIP_FAULTS</c> (the library
/// never reads the environment; the worker does):
/// <code>
/// plan  := fault (';' fault)*
/// fault := KIND '@' STEP ['-' LAST] [',rank=' R] [',point=' P]
/// KIND  := kill | stall | nan | write-fail | throw
/// P     := data | forward | exchange | backward | reduce | optimizer | checkpoint
/// </code>
/// STEP is the 1-based step being computed (the one that becomes StepsDone = STEP); STEP-LAST is an
/// inclusive range. Without <c>rank</c> any rank may fire it. The point defaults to
/// <c>forward</c> for kill, stall and throw, to <c>backward</c> (after it, before the all-reduce)
/// for nan, the only point nan has, and to <c>checkpoint</c> (rank 0's write after step STEP) for
/// write-fail, the only point it has.
/// </summary>
public sealed record FaultPlan(IReadOnlyList<Fault> Faults)
{
    public static readonly FaultPlan None = new([]);

    public const string Grammar = "KIND@STEP[-LAST][,rank=R][,point=P] separated by ';' "
        + "(KIND: kill, stall, nan, write-fail, throw; P: data, forward, exchange, backward, reduce, optimizer, checkpoint)";

    private static readonly Dictionary<string, FaultKind> Kinds = new(StringComparer.Ordinal)
    {
        ["kill"] = FaultKind.Kill,
        ["stall"] = FaultKind.Stall,
        ["nan"] = FaultKind.Nan,
        ["write-fail"] = FaultKind.WriteFail,
        ["throw"] = FaultKind.Throw,
    };

    private static readonly Dictionary<string, TrainingPhase> Points = new(StringComparer.Ordinal)
    {
        ["data"] = TrainingPhase.Data,
        ["forward"] = TrainingPhase.Forward,
        ["exchange"] = TrainingPhase.Exchange,
        ["backward"] = TrainingPhase.Backward,
        ["reduce"] = TrainingPhase.Reduce,
        ["optimizer"] = TrainingPhase.Optimizer,
        ["checkpoint"] = TrainingPhase.Checkpoint,
    };

    public bool IsEmpty => Faults.Count == 0;

    /// <summary>The name a kind has in the grammar.</summary>
    public static string KindName(FaultKind kind) => Kinds.First(k => k.Value == kind).Key;

    /// <summary>The name a point has in the grammar.</summary>
    public static string PointName(TrainingPhase point) => Points.First(p => p.Value == point).Key;

    /// <summary>Reads a plan; null, empty or blank text is no fault at all.</summary>
    /// <exception cref="FormatException">The text breaks the grammar; the message names the fault and what is wrong.</exception>
    public static FaultPlan Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return None;
        }

        var faults = new List<Fault>();
        foreach (string item in text.Split(';', StringSplitOptions.TrimEntries))
        {
            if (item.Length == 0)
            {
                throw new FormatException($"an empty fault in '{text}'; expected {Grammar}");
            }

            faults.Add(ParseFault(item));
        }

        return new FaultPlan(faults);
    }

    private static Fault ParseFault(string item)
    {
        string[] parts = item.Split(',', StringSplitOptions.TrimEntries);
        int at = parts[0].IndexOf('@', StringComparison.Ordinal);
        if (at < 0)
        {
            throw Bad(item, "no '@STEP'");
        }

        string kindText = parts[0][..at];
        if (!Kinds.TryGetValue(kindText, out var kind))
        {
            throw Bad(item, $"'{kindText}' is not a kind (kill, stall, nan, write-fail, throw)");
        }

        string steps = parts[0][(at + 1)..];
        int dash = steps.IndexOf('-', StringComparison.Ordinal);
        long first = StepOf(item, dash < 0 ? steps : steps[..dash]);
        long last = dash < 0 ? first : StepOf(item, steps[(dash + 1)..]);
        if (last < first)
        {
            throw Bad(item, $"the range {first}-{last} ends before it starts");
        }

        int? rank = null;
        TrainingPhase? point = null;
        foreach (string option in parts.Skip(1))
        {
            int eq = option.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? option : option[..eq];
            string value = eq < 0 ? "" : option[(eq + 1)..];
            switch (key)
            {
                case "rank" when rank is null:
                    rank = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int r)
                        ? r : throw Bad(item, $"rank '{value}' is not a rank (0, 1, ...)");
                    break;
                case "point" when point is null:
                    point = Points.TryGetValue(value, out var p)
                        ? p : throw Bad(item, $"'{value}' is not a point (data, forward, exchange, backward, reduce, optimizer, checkpoint)");
                    break;
                case "rank" or "point":
                    throw Bad(item, $"{key} given twice");
                default:
                    throw Bad(item, $"'{option}' is not rank=R or point=P");
            }
        }

        var defaultPoint = kind switch
        {
            FaultKind.Nan => TrainingPhase.Backward,
            FaultKind.WriteFail => TrainingPhase.Checkpoint,
            _ => TrainingPhase.Forward,
        };
        if (point is { } given && given != defaultPoint && kind is FaultKind.Nan or FaultKind.WriteFail)
        {
            throw Bad(item, $"{kindText} happens only at point={PointName(defaultPoint)}");
        }

        return new Fault(kind, first, last, rank, point ?? defaultPoint, item);
    }

    private static long StepOf(string item, string text) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long step) && step >= 1
            ? step
            : throw Bad(item, $"'{text}' is not a step (1, 2, ...)");

    private static FormatException Bad(string item, string what) => new($"'{item}': {what}; expected {Grammar}");
}

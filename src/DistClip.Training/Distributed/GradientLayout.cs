using TorchSharp.Modules;

namespace DistClip.Training.Distributed;

/// <summary>
/// Where every gradient lives in the flat reduction buffer, and how that buffer splits into stages
/// and buckets. A pure function of the stages (parameter order and shapes), so every rank of a run
/// computes the same layout and issues the same all-reduces in the same order.
/// </summary>
/// <remarks>
/// A stage is a group of parameters whose gradients become final together (a tower whose backward has
/// ended), reduced as soon as it is released while later stages are still computing. Each stage opens
/// with one presence flag per parameter of it ([P_s] floats: 1 where this rank holds a gradient), then
/// each parameter's gradient in order. A stage's flags ride in its first bucket, which is reduced
/// before its others, so their sums — how many ranks had a gradient — are known before any of the
/// stage's buckets is unpacked. Buckets hold whole parameters of one stage; a parameter larger than
/// the bucket size gets a bucket of its own.
/// </remarks>
internal sealed class GradientLayout
{
    public GradientLayout(IReadOnlyList<Parameter> parameters, int bucketBytes)
        : this([parameters], bucketBytes)
    {
    }

    /// <param name="rowSparse">
    /// Parameters ([rows, width] lookup tables) whose gradient is zero outside the rows a batch used:
    /// each gets a bucket of its own, which the reducer may send as just the rows some rank used.
    /// </param>
    public GradientLayout(IReadOnlyList<IReadOnlyList<Parameter>> stages, int bucketBytes, IReadOnlyCollection<Parameter>? rowSparse = null)
    {
        ArgumentNullException.ThrowIfNull(stages);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketBytes, sizeof(float));
        Parameters = [.. stages.SelectMany(s => s)];
        if (Parameters.Distinct().Count() != Parameters.Length)
        {
            throw new ArgumentException("A parameter appears in more than one stage (or twice in one).", nameof(stages));
        }

        RowSparse = [.. (rowSparse ?? []).Distinct()];
        foreach (var p in RowSparse)
        {
            if (!Parameters.Contains(p) || p.ndim != 2)
            {
                throw new ArgumentException($"A row-sparse parameter must be a [rows, width] parameter of a stage, not [{string.Join(", ", p.shape)}].", nameof(rowSparse));
            }
        }

        int count = Parameters.Length;
        Slots = new Slot[count];
        FlagIndex = new int[count];
        Stages = new Stage[stages.Count];
        var buckets = new List<Bucket>();
        int targetFloats = bucketBytes / sizeof(float);
        long offset = 0;
        int first = 0;
        for (int s = 0; s < stages.Count; s++)
        {
            int end = first + stages[s].Count;
            long flags = offset;
            offset += end - first; // the stage's presence flags
            for (int i = first; i < end; i++)
            {
                FlagIndex[i] = checked((int)(flags + (i - first)));
                Slots[i] = new Slot(offset, Parameters[i].numel(), Parameters[i].shape);
                offset += Slots[i].Count;

                // Memory<float> and the collectives index with int.
                if (offset > Array.MaxLength)
                {
                    throw new NotSupportedException($"{offset} gradient floats do not fit one reduction buffer (at most {Array.MaxLength}).");
                }
            }

            int firstBucket = buckets.Count;
            Split(first, end, (int)flags, targetFloats, buckets);
            Stages[s] = new Stage(first, end, firstBucket, buckets.Count);
            first = end;
        }

        TotalFloats = (int)offset;
        Buckets = [.. buckets];
    }

    /// <summary>The parameters this layout was built for, in buffer order (stage by stage).</summary>
    public Parameter[] Parameters { get; }

    /// <summary>Per parameter, its range of the flat buffer.</summary>
    public Slot[] Slots { get; }

    /// <summary>Per parameter, where its presence flag lives in the flat buffer.</summary>
    public int[] FlagIndex { get; }

    public Stage[] Stages { get; }

    public Bucket[] Buckets { get; }

    /// <summary>Parameters whose buckets may go as rows (see the constructor).</summary>
    public Parameter[] RowSparse { get; }

    /// <summary>Floats in the flat buffer: every stage's presence flags and gradients.</summary>
    public int TotalFloats { get; }

    /// <summary>Whether <paramref name="stages"/> are the same tensors, in the same stages, order and shapes.</summary>
    public bool Matches(IReadOnlyList<IReadOnlyList<Parameter>> stages, IReadOnlyCollection<Parameter>? rowSparse = null)
    {
        var sparse = (rowSparse ?? []).Distinct().ToList();
        if (stages.Count != Stages.Length || sparse.Count != RowSparse.Length || sparse.Any(p => !RowSparse.Contains(p)))
        {
            return false;
        }

        for (int s = 0; s < Stages.Length; s++)
        {
            var stage = stages[s];
            if (stage.Count != Stages[s].End - Stages[s].First)
            {
                return false;
            }

            for (int j = 0; j < stage.Count; j++)
            {
                int i = Stages[s].First + j;
                // Module.to() replaces Parameter objects; a replaced one needs fresh views.
                if (!ReferenceEquals(stage[j], Parameters[i]) || !stage[j].shape.SequenceEqual(Slots[i].Shape))
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>Buckets for parameters [first, end), the first starting at the stage's flags; a row-sparse parameter alone in its own.</summary>
    private void Split(int first, int end, int start, int targetFloats, List<Bucket> buckets)
    {
        int bucketFirst = first;
        for (int i = first; i < end; i++)
        {
            if (RowSparse.Contains(Parameters[i]))
            {
                // Close what came before it (the flags at least), then the table on its own.
                if (Slots[i].Offset > start || bucketFirst < i)
                {
                    buckets.Add(new Bucket(start, (int)(Slots[i].Offset - start), bucketFirst, i));
                }

                buckets.Add(new Bucket((int)Slots[i].Offset, (int)Slots[i].Count, i, i + 1, RowSparse: true));
                bucketFirst = i + 1;
                start = (int)(Slots[i].Offset + Slots[i].Count);
                continue;
            }

            long stop = Slots[i].Offset + Slots[i].Count;
            if (stop - start >= targetFloats || i == end - 1)
            {
                buckets.Add(new Bucket(start, (int)(stop - start), bucketFirst, i + 1));
                bucketFirst = i + 1;
                start = (int)stop;
            }
        }
    }

    /// <param name="Offset">First float of the gradient in the flat buffer.</param>
    /// <param name="Count">numel of the parameter.</param>
    public readonly record struct Slot(long Offset, long Count, long[] Shape);

    /// <summary>Parameters [First, End) in buckets [FirstBucket, EndBucket); a stage without parameters has no bucket.</summary>
    public readonly record struct Stage(int First, int End, int FirstBucket, int EndBucket);

    /// <summary>
    /// Buffer range [Start, Start + Length) holding parameters [First, End) (a stage's first bucket also
    /// its flags; a row-sparse bucket exactly one row-sparse parameter).
    /// </summary>
    public readonly record struct Bucket(int Start, int Length, int First, int End, bool RowSparse = false)
    {
        /// <summary>Where this bucket's gradients begin (after the flags in a stage's first bucket).</summary>
        public int GradientStart(GradientLayout layout) => First < End ? (int)layout.Slots[First].Offset : Start + Length;
    }
}

using TorchSharp.Modules;

namespace DistClip.Training.Distributed;

/// <summary>
/// Where every gradient lives in the flat reduction buffer, and how that buffer splits into buckets.
/// A pure function of the parameter list (order and shapes), so every rank of a run computes the
/// same layout and issues the same all-reduces.
/// </summary>
/// <remarks>
/// The buffer opens with one presence flag per parameter ([P] floats: 1 where this rank holds a
/// gradient), then each parameter's gradient in list order. The flags ride in bucket 0, which is
/// reduced first, so their sums — how many ranks had a gradient — are known before any bucket is
/// unpacked. Buckets hold whole parameters; one larger than the bucket size gets a bucket of its own.
/// </remarks>
internal sealed class GradientLayout
{
    public GradientLayout(IReadOnlyList<Parameter> parameters, int bucketBytes)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketBytes, sizeof(float));
        Parameters = [.. parameters];
        int count = Parameters.Length;
        Slots = new Slot[count];
        long offset = count; // after the presence flags
        for (int i = 0; i < count; i++)
        {
            var p = Parameters[i];
            Slots[i] = new Slot(offset, p.numel(), p.shape);
            offset += Slots[i].Count;
        }

        // Memory<float> and the collectives index with int.
        if (offset > Array.MaxLength)
        {
            throw new NotSupportedException($"{offset} gradient floats do not fit one reduction buffer (at most {Array.MaxLength}).");
        }

        TotalFloats = (int)offset;
        Buckets = Split(bucketBytes / sizeof(float));
    }

    /// <summary>The parameters this layout was built for, in buffer order.</summary>
    public Parameter[] Parameters { get; }

    /// <summary>Per parameter, its range of the flat buffer.</summary>
    public Slot[] Slots { get; }

    public Bucket[] Buckets { get; }

    /// <summary>Floats in the flat buffer: P presence flags plus every gradient.</summary>
    public int TotalFloats { get; }

    /// <summary>Presence flags occupy [0, FlagCount).</summary>
    public int FlagCount => Parameters.Length;

    /// <summary>Whether <paramref name="parameters"/> are the same tensors, in the same order and shapes.</summary>
    public bool Matches(IReadOnlyList<Parameter> parameters)
    {
        if (parameters.Count != Parameters.Length)
        {
            return false;
        }

        for (int i = 0; i < Parameters.Length; i++)
        {
            // Module.to() replaces Parameter objects; a replaced one needs fresh views.
            if (!ReferenceEquals(parameters[i], Parameters[i]) || !parameters[i].shape.SequenceEqual(Slots[i].Shape))
            {
                return false;
            }
        }

        return true;
    }

    private Bucket[] Split(int targetFloats)
    {
        var buckets = new List<Bucket>();
        int first = 0;
        int start = 0;
        for (int i = 0; i < Parameters.Length; i++)
        {
            long end = Slots[i].Offset + Slots[i].Count;
            if (end - start >= targetFloats || i == Parameters.Length - 1)
            {
                buckets.Add(new Bucket(start, (int)(end - start), first, i + 1));
                first = i + 1;
                start = (int)end;
            }
        }

        if (buckets.Count == 0)
        {
            // No parameters at all: one empty bucket keeps every rank's call sequence the same.
            buckets.Add(new Bucket(0, 0, 0, 0));
        }

        return [.. buckets];
    }

    /// <param name="Offset">First float of the gradient in the flat buffer.</param>
    /// <param name="Count">numel of the parameter.</param>
    public readonly record struct Slot(long Offset, long Count, long[] Shape);

    /// <summary>Buffer range [Start, Start + Length) holding parameters [First, End) (bucket 0 also the flags).</summary>
    public readonly record struct Bucket(int Start, int Length, int First, int End)
    {
        /// <summary>Where this bucket's gradients begin (after the flags in bucket 0).</summary>
        public int GradientStart(GradientLayout layout) => First < End ? (int)layout.Slots[First].Offset : Start + Length;
    }
}

namespace DistClip.Collectives.Ring;

internal static class Partition
{
    /// <summary>A byte range of a buffer.</summary>
    public readonly record struct Block(long Offset, long Length);

    /// <summary>
    /// Splits <paramref name="count"/> floats into <paramref name="parts"/> contiguous blocks whose
    /// sizes differ by at most one float (block b starts at floor(b * count / parts)); some may be empty.
    /// </summary>
    public static Block[] EvenFloatBlocks(long count, int parts)
    {
        var blocks = new Block[parts];
        for (int b = 0; b < parts; b++)
        {
            long start = b * count / parts;
            long end = (b + 1) * count / parts;
            blocks[b] = new Block(start * sizeof(float), (end - start) * sizeof(float));
        }

        return blocks;
    }

    /// <summary>Blocks of <c>counts[b]</c> elements of <paramref name="elementSize"/> bytes, in order.</summary>
    public static Block[] Consecutive(IReadOnlyList<int> counts, int elementSize)
    {
        var blocks = new Block[counts.Count];
        long offset = 0;
        for (int b = 0; b < counts.Count; b++)
        {
            if (counts[b] < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(counts), $"counts[{b}] is negative ({counts[b]}).");
            }

            blocks[b] = new Block(offset, (long)counts[b] * elementSize);
            offset += blocks[b].Length;
        }

        return blocks;
    }
}

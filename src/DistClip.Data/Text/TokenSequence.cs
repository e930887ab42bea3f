namespace DistClip.Data;

/// <summary>How every tokenizer lays a caption into a fixed context.</summary>
public static class TokenSequence
{
    /// <summary>
    /// Writes <c>[start, ids…, end]</c> then zeros up to <paramref name="contextLength"/>; returns the
    /// used length (the end marker sits at return − 1). Too long a caption keeps its first ids and still
    /// ends in the end marker, as <c>clip.tokenize(truncate=True)</c> does.
    /// </summary>
    public static int Pack(IReadOnlyList<int> ids, int start, int end, int contextLength, Span<long> tokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        if (tokens.Length < contextLength)
        {
            throw new ArgumentException($"Need {contextLength} token slots, got {tokens.Length}.", nameof(tokens));
        }

        int kept = Math.Min(ids.Count, contextLength - 2);
        tokens[0] = start;
        for (int i = 0; i < kept; i++)
        {
            tokens[i + 1] = ids[i];
        }

        tokens[kept + 1] = end;
        tokens[(kept + 2)..contextLength].Clear();
        return kept + 2;
    }
}

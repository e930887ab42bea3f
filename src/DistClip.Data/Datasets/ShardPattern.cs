using System.Globalization;
using System.Text;

namespace DistClip.Data;

/// <summary>
/// Brace expansion for shard lists, as webdataset and bash write them:
/// <c>shards-{000..009}.tar</c> (numeric range; zero-padding kept; descending allowed),
/// <c>{train,val}-{0..3}.tar</c> (comma lists; several and nested groups). A group with neither a
/// comma nor a range (<c>{x}</c>) stays literal, as in bash; an unmatched '{' is refused as a likely typo.
/// </summary>
public static class ShardPattern
{
    /// <summary>A guard against a typo such as {0..99999999} producing a list nobody meant.</summary>
    public const int MaxExpansions = 1_000_000;

    /// <summary>Expands every brace group, left to right (so the last group varies fastest).</summary>
    /// <exception cref="DataException">Unbalanced braces, a malformed range, or more than <see cref="MaxExpansions"/> names.</exception>
    public static IReadOnlyList<string> Expand(string pattern)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pattern);
        var results = new List<string>();
        ExpandInto(pattern, 0, pattern, results);
        return results;
    }

    private static void ExpandInto(string text, int searchFrom, string pattern, List<string> results)
    {
        int open = text.IndexOf('{', searchFrom);
        while (open >= 0)
        {
            int close = MatchingClose(text, open, pattern);
            string body = text[(open + 1)..close];
            List<string>? alternatives = Alternatives(body, pattern);
            if (alternatives is null)
            {
                // Literal group such as "{x}": keep it and look further right.
                open = text.IndexOf('{', close + 1);
                continue;
            }

            string prefix = text[..open];
            string suffix = text[(close + 1)..];
            foreach (string alternative in alternatives)
            {
                // The alternative may itself hold braces; the prefix has none left to expand.
                ExpandInto(prefix + alternative + suffix, prefix.Length, pattern, results);
            }

            return;
        }

        if (results.Count >= MaxExpansions)
        {
            throw new DataException($"Shard pattern \"{pattern}\" expands to more than {MaxExpansions} names.");
        }

        results.Add(text);
    }

    private static int MatchingClose(string text, int open, string pattern)
    {
        int depth = 0;
        for (int i = open; i < text.Length; i++)
        {
            if (text[i] == '{')
            {
                depth++;
            }
            else if (text[i] == '}' && --depth == 0)
            {
                return i;
            }
        }

        throw new DataException($"Shard pattern \"{pattern}\" has a '{{' without a matching '}}'.");
    }

    /// <summary>The group's alternatives, or null when the group is literal.</summary>
    private static List<string>? Alternatives(string body, string pattern)
    {
        List<string> parts = SplitTopLevelCommas(body);
        if (parts.Count > 1)
        {
            return parts;
        }

        int dots = body.IndexOf("..", StringComparison.Ordinal);
        if (dots < 0)
        {
            return null;
        }

        string first = body[..dots];
        string last = body[(dots + 2)..];
        if (!long.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out long from)
            || !long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out long to))
        {
            throw new DataException($"Shard pattern \"{pattern}\": range {{{body}}} needs two non-negative integers, like {{000..099}}.");
        }

        if (Math.Abs(to - from) >= MaxExpansions)
        {
            throw new DataException($"Shard pattern \"{pattern}\" expands to more than {MaxExpansions} names.");
        }

        // bash and braceexpand pad to the wider bound when either bound is written with a leading zero.
        bool padded = (first.Length > 1 && first[0] == '0') || (last.Length > 1 && last[0] == '0');
        int width = padded ? Math.Max(first.Length, last.Length) : 0;
        long step = to >= from ? 1 : -1;
        var values = new List<string>((int)Math.Abs(to - from) + 1);
        for (long v = from; ; v += step)
        {
            values.Add(v.ToString(CultureInfo.InvariantCulture).PadLeft(width, '0'));
            if (v == to)
            {
                break;
            }
        }

        return values;
    }

    private static List<string> SplitTopLevelCommas(string body)
    {
        var parts = new List<string>();
        var current = new StringBuilder();
        int depth = 0;
        foreach (char ch in body)
        {
            if (ch == ',' && depth == 0)
            {
                parts.Add(current.ToString());
                current.Clear();
                continue;
            }

            depth += ch == '{' ? 1 : ch == '}' ? -1 : 0;
            current.Append(ch);
        }

        parts.Add(current.ToString());
        return parts;
    }
}

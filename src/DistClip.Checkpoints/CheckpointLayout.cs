using System.Globalization;

namespace DistClip.Checkpoints;

/// <summary>
/// Names on disk. A run directory holds <c>step-NNNNNNNNN</c> directories (9 digits, more once a run
/// passes a billion steps), the <c>latest</c> pointer file, and transient <c>.tmp-*</c> entries that
/// a reader ignores and the next successful commit deletes.
/// </summary>
internal static class CheckpointLayout
{
    public const string LatestFileName = "latest";
    public const string TempPrefix = ".tmp-";
    public const string StepPrefix = "step-";

    public static string StepDirectoryName(long step) =>
        StepPrefix + step.ToString("D9", CultureInfo.InvariantCulture);

    public static bool TryParseStep(string name, out long step)
    {
        step = -1;
        if (!name.StartsWith(StepPrefix, StringComparison.Ordinal))
        {
            return false;
        }
        ReadOnlySpan<char> digits = name.AsSpan(StepPrefix.Length);
        // Exactly what StepDirectoryName produces: at least 9 digits, no sign, no spaces.
        if (digits.Length < 9 || !digits.ContainsOnlyDigits())
        {
            return false;
        }
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out step);
    }

    /// <summary>Steps of the <c>step-*</c> directories in a run directory, ascending; empty if it does not exist.</summary>
    public static IReadOnlyList<long> ListSteps(string runDirectory)
    {
        if (!Directory.Exists(runDirectory))
        {
            return [];
        }
        var steps = new List<long>();
        foreach (string path in Directory.EnumerateDirectories(runDirectory, StepPrefix + "*"))
        {
            if (TryParseStep(Path.GetFileName(path), out long step))
            {
                steps.Add(step);
            }
        }
        steps.Sort();
        return steps;
    }

    /// <summary>
    /// The step directory name <c>latest</c> holds, or null with <paramref name="problem"/> saying why
    /// (missing, unreadable, or not a step directory name: it is never trusted as a path).
    /// </summary>
    public static string? TryReadLatest(string runDirectory, out string? problem)
    {
        string path = Path.Combine(runDirectory, LatestFileName);
        problem = null;
        string text;
        try
        {
            // A few bytes from a regular file: a FIFO named latest would block a resume forever.
            text = System.Text.Encoding.UTF8.GetString(Manifest.ReadSmallFile(runDirectory, LatestFileName, maxBytes: 256)).Trim();
        }
        catch (CorruptCheckpointException e) when (e.Reason == "missing")
        {
            problem = $"{path} is missing";
            return null;
        }
        catch (CorruptCheckpointException e)
        {
            problem = $"{path} {e.Reason}";
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problem = $"{path} could not be read ({e.Message})";
            return null;
        }
        if (!TryParseStep(text, out _))
        {
            problem = $"{path} holds '{text}', which is not a step directory name";
            return null;
        }
        return text;
    }

    /// <summary>One path segment that cannot escape its parent and needs no quoting in MANIFEST.</summary>
    public static bool IsPlainName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name is "." or ".." || name.Length > 200)
        {
            return false;
        }
        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }
        return true;
    }

    private static bool ContainsOnlyDigits(this ReadOnlySpan<char> span)
    {
        foreach (char c in span)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }
        return true;
    }
}

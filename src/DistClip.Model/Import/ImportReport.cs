using System.Text;

namespace DistClip.Model.Import;

/// <summary>A tensor name and its shape, as written in reports: <c>visual.proj [768, 512]</c>.</summary>
public sealed record NamedShape(string Name, long[] Shape)
{
    public override string ToString() => $"{Name} [{string.Join(", ", Shape)}]";
}

/// <summary>A name present in both the file and the model with different shapes.</summary>
public sealed record ShapeMismatch(string Name, long[] FileShape, long[] ModelShape)
{
    public override string ToString() => $"{Name}: file [{string.Join(", ", FileShape)}], model [{string.Join(", ", ModelShape)}]";
}

/// <summary>A name deliberately not copied, and why.</summary>
public sealed record IgnoredEntry(string Name, string Reason)
{
    public override string ToString() => $"{Name} ({Reason})";
}

/// <summary>
/// What an import matched. Every name of the file and of the model appears in exactly one list:
/// <see cref="Loaded"/>, <see cref="Missing"/> (model only), <see cref="Unexpected"/> (file only),
/// <see cref="ShapeMismatches"/>, or <see cref="Ignored"/> (known metadata, with the reason).
/// </summary>
public sealed record ImportReport(
    string Source,
    string Format,
    IReadOnlyList<string> Loaded,
    IReadOnlyList<NamedShape> Missing,
    IReadOnlyList<NamedShape> Unexpected,
    IReadOnlyList<ShapeMismatch> ShapeMismatches,
    IReadOnlyList<IgnoredEntry> Ignored,
    IReadOnlyList<string> Notes)
{
    /// <summary>Whether every model tensor got a value from the file and every file tensor found a place.</summary>
    public bool IsComplete => Missing.Count == 0 && Unexpected.Count == 0 && ShapeMismatches.Count == 0;

    /// <summary>Whether the model's tensors were overwritten (false when a strict import refused).</summary>
    public bool Applied { get; init; }

    /// <summary>A multi-line account naming every problem (and the ignored names), for logs and errors.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append($"{Source} ({Format}): {Loaded.Count} tensors matched");
        Section(text, "in the model but not in the file", Missing);
        Section(text, "in the file but not in the model", Unexpected);
        Section(text, "shape differs", ShapeMismatches);
        Section(text, "ignored", Ignored);
        Section(text, "notes", Notes);
        return text.ToString();
    }

    public override string ToString() => Describe();

    private static void Section<T>(StringBuilder text, string title, IReadOnlyList<T> items)
    {
        if (items.Count == 0)
        {
            return;
        }

        text.Append($"\n  {title} ({items.Count}):");
        foreach (var item in items)
        {
            text.Append("\n    ").Append(item);
        }
    }
}

/// <summary>Pretrained weights that cannot be imported as asked; <see cref="Report"/> names every mismatch when there is one.</summary>
public sealed class PretrainedImportException : Exception
{
    public PretrainedImportException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }

    public PretrainedImportException(ImportReport report)
        : base("pretrained weights do not match the model; nothing was loaded.\n" + report.Describe())
    {
        Report = report;
    }

    public ImportReport? Report { get; }
}

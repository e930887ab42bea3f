namespace DistClip.Data;

/// <summary>Caption templates in the style of CLIP's zero-shot prompts; "{}" stands for the class name.</summary>
public static class PromptTemplates
{
    public const string Placeholder = "{}";

    // Order matters: captions pick a template by index, so appending is safe and reordering changes captions.
    public static IReadOnlyList<string> Default { get; } =
    [
        "a photo of a {}.",
        "a picture of a {}.",
        "a black and white photo of a {}.",
        "a low resolution photo of a {}.",
        "a photo of the {}.",
        "an image of a {}.",
        "a grayscale photo of a {}.",
        "a cropped photo of a {}.",
    ];

    /// <summary>Puts <paramref name="className"/> in place of "{}".</summary>
    public static string Apply(string template, string className)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(className);
        if (!template.Contains(Placeholder, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Template \"{template}\" has no {Placeholder} placeholder.", nameof(template));
        }

        return template.Replace(Placeholder, className, StringComparison.Ordinal);
    }
}

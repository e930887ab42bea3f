using DistClip.Config.Settings;

namespace DistClip.Config.Tests;

/// <summary>
/// The README's settings table is generated from the setting table. When a setting changes, run
/// <c>DISTCLIP_UPDATE_GENERATED=1 dotnet test tests/DistClip.Config.Tests --filter GeneratedDocs</c>
/// to rewrite it (the Helm chart's schema has the same test in DistClip.Helm.Tests).
/// </summary>
public sealed class GeneratedDocsTests
{
    internal const string Begin = "<!-- settings:begin (generated from src/DistClip.Config; see the contributor notes) -->";
    internal const string End = "<!-- settings:end -->";

    [Fact]
    public void The_readme_settings_table_is_the_generated_one()
    {
        string path = Path.Combine(RepositoryRoot(), "README.md");
        string readme = File.ReadAllText(path);
        int begin = readme.IndexOf(Begin, StringComparison.Ordinal);
        int end = readme.IndexOf(End, StringComparison.Ordinal);
        Assert.True(begin >= 0 && end > begin, $"README.md lacks the generated settings markers {Begin} ... {End}");
        string committed = readme[(begin + Begin.Length)..end].Trim('\n');
        string generated = SettingDocs.MarkdownTable().Trim('\n');
        if (committed != generated && Environment.GetEnvironmentVariable("DISTCLIP_UPDATE_GENERATED") == "1")
        {
            File.WriteAllText(path, readme[..(begin + Begin.Length)] + "\n" + generated + "\n" + readme[end..]);
            return;
        }

        Assert.True(committed == generated,
            "README.md's settings table differs from the settings in src/DistClip.Config; regenerate it with " +
            "DISTCLIP_UPDATE_GENERATED=1 dotnet test tests/DistClip.Config.Tests --filter GeneratedDocs");
    }

    [Fact]
    public void Every_setting_has_a_row()
    {
        string table = SettingDocs.MarkdownTable();
        foreach (var s in SettingTable<RunConfig>.Settings)
        {
            Assert.Contains($"| `--{s.Name} ", table, StringComparison.Ordinal);
        }
    }

    internal static string RepositoryRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "DistClip.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        return dir ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }
}

using System.Diagnostics;

namespace DistClip.Helm.Tests;

/// <summary>What one run of the helm binary printed and how it exited.</summary>
internal sealed record HelmResult(int ExitCode, string Output, string Error)
{
    public string Describe() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
}

/// <summary>
/// The real Helm binary that scripts/ensure-helm.sh installs into .tools/bin, run as a child
/// process with its own empty configuration, cache and data folders, so that nothing on the
/// machine (repositories, plugins, a kubeconfig) changes what it does.
/// </summary>
internal static class HelmProcess
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(1);
    private static readonly string Home = CreateHome();

    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string ChartDirectory { get; } = Path.Combine(RepositoryRoot, "helm", "distclip");

    public static string Binary { get; } = Path.Combine(RepositoryRoot, ".tools", "bin", "helm");

    /// <summary>An empty folder for helm's configuration, cache and data, removed when the test process exits.</summary>
    private static string CreateHome()
    {
        string home = Directory.CreateTempSubdirectory("distclip-helm-home-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(home, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: a leftover empty folder in the temp directory is all that is lost.
            }
        };
        return home;
    }

    public static HelmResult Run(params string[] args)
    {
        if (!File.Exists(Binary))
        {
            throw new InvalidOperationException(
                $"helm is not installed at {Binary}; run scripts/ensure-helm.sh (./test.sh runs it before the build).");
        }

        var start = new ProcessStartInfo(Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = RepositoryRoot,
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["HELM_CONFIG_HOME"] = Path.Combine(Home, "config");
        start.Environment["HELM_CACHE_HOME"] = Path.Combine(Home, "cache");
        start.Environment["HELM_DATA_HOME"] = Path.Combine(Home, "data");
        start.Environment["KUBECONFIG"] = Path.Combine(Home, "no-kubeconfig");

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Binary}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"helm {string.Join(' ', args)} did not finish in {Timeout.TotalSeconds} s");
        }

        return new HelmResult(process.ExitCode, output.GetAwaiter().GetResult(), error.GetAwaiter().GetResult());
    }

    /// <summary>The ci/*-values.yaml files, by file name, one per supported shape of a release.</summary>
    public static IReadOnlyList<string> CiValuesFiles() =>
        Directory.GetFiles(Path.Combine(ChartDirectory, "ci"), "*-values.yaml").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!;

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "DistClip.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no DistClip.sln above {AppContext.BaseDirectory}");
    }
}

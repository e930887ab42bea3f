using System.Globalization;
using System.Net;
using DistClip.Control;
using DistClip.Coordinator.Launchers;
using DistClip.Coordinator.Reports;
using DistClip.Coordinator.Runs;
using DistClip.Coordinator.Services;
using DistClip.Model;
using DistClip.Training;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Cli;

/// <summary>
/// <c>coordinator launch</c>: checks the run, starts the control plane and the workers (here, by the
/// local launcher), shows progress, and writes the summary. <c>coordinator serve</c> is the same run
/// waiting for workers started elsewhere.
/// </summary>
internal static class LaunchCommand
{
    public static async Task<int> RunAsync(string[] args, bool serve, ILoggerFactory loggers, CancellationToken ct)
    {
        var logger = loggers.CreateLogger("DistClip.Coordinator");
        RunPlan plan;
        ServeOptions? serveOptions = null;
        try
        {
            var (settings, rest) = Parse(args);
            serveOptions = serve ? ServeOptions.Parse(rest) : rest.Count == 0 ? null : throw new ConfigException(rest[0], "unknown option; run 'coordinator launch --help'");
            plan = Preflight.Check(settings, w => Console.Error.WriteLine($"warning: {w}"), serve ? null : GpuInventory.OfThisHost());
        }
        catch (Exception e) when (e is ConfigException or Data.DataException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine($"Run 'coordinator {(serve ? "serve" : "launch")} --help' for the settings.");
            return ExitCodes.BadConfiguration;
        }

        var s = plan.Settings;
        string secret = serveOptions?.Secret ?? RunSecret.Generate();
        var runSettings = new RunSettings
        {
            RunId = plan.RunId,
            Secret = secret,
            Training = s.Training,
            WorldSize = s.Workers,
            RunDirectory = plan.RunDirectory,
            CheckpointRoot = plan.CheckpointRoot,
            CheckpointEvery = s.CheckpointEvery,
            KeepCheckpoints = s.Keep,
            ResumeFrom = plan.Resume?.Directory,
            MaxRestarts = s.MaxRestarts,
            HeartbeatTimeout = TimeSpan.FromSeconds(s.HeartbeatTimeoutSeconds),
            CollectiveTimeout = TimeSpan.FromSeconds(s.CollectiveTimeoutSeconds),
            JoinTimeout = serve ? TimeSpan.FromHours(1) : TimeSpan.FromMinutes(5),
        };

        using var run = new Membership(runSettings, loggers.CreateLogger<Membership>());
        // Local workers reach the coordinator on loopback; remote ones (hostfile, serve) need an address they can reach.
        bool loopbackOnly = !serve && (plan.Hosts is null || Launchers.Hostfile.AllLoopback(plan.Hosts));
        var bind = serveOptions?.Bind ?? (loopbackOnly ? IPAddress.Loopback : IPAddress.Any);
        string advertise = serveOptions?.AdvertiseHost ?? s.AdvertiseHost ?? (IPAddress.IsLoopback(bind) ? bind.ToString() : Dns.GetHostName());
        await using var server = await CoordinatorServer.StartAsync(run, bind, serveOptions?.Port ?? 0, advertise, ct);
        Console.WriteLine($"run {plan.RunId}: {s.Workers} worker(s), {s.Training.Model} on {s.Training.Dataset}, " +
            $"{s.Training.Steps} steps at global batch {s.Training.GlobalBatch}" + (plan.Resume is null ? "" : $", resuming from step {plan.Resume.Step}"));
        Console.WriteLine($"coordinator listening at {server.Address}; logs and summary in {plan.RunDirectory}");

        using var progress = new ProgressReporter(s.Training.Steps, s.Training.LogEvery, Console.Out, interactive: !Console.IsOutputRedirected);
        run.ProgressReported += p => progress.Report(p.Step, p.TotalSteps, p.Loss, p.LearningRate, p.LogitScale, p.Samples);
        run.CheckpointReported += c => progress.Note($"checkpoint of step {c.Step} committed: {c.Directory}");
        run.GenerationAborted += why => progress.Note($"generation aborted: {why}; restarting from the latest checkpoint");
        await using WorkerLauncher? launcher = serve ? null
            : plan.Hosts is null ? new LocalLauncher(run, server.Address, plan.WorkerGpus, loggers.CreateLogger<LocalLauncher>())
            : new SshLauncher(run, server.Address, plan.Hosts, plan.WorkerGpus, (s.SshOptions ?? "").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries),
                s.RemoteWorker ?? $"dotnet {WorkerLauncher.WorkerDll}", loggers.CreateLogger<SshLauncher>());
        if (serve)
        {
            string secretFile = Path.Combine(plan.RunDirectory, "secret");
            if (serveOptions!.Secret is null)
            {
                WriteSecret(secretFile, secret);
            }

            Console.WriteLine($"waiting for {s.Workers} workers: worker --coordinator {server.Address} --secret-file {(serveOptions.Secret is null ? secretFile : "<yours>")}");
        }
        else
        {
            launcher!.Start();
        }

        RunOutcome outcome;
        using (ct.Register(() => run.Fail("interrupted")))
        {
            outcome = await run.Completion.ConfigureAwait(false);
        }

        progress.Finish();
        await run.WaitUntilWorkersToldAsync(runSettings.HeartbeatInterval * 10);
        if (!outcome.Succeeded)
        {
            Console.Error.WriteLine($"error: the run failed: {outcome.Error}");
            Console.Error.WriteLine($"worker logs: {Path.Combine(plan.RunDirectory, "logs")}");
            return ct.IsCancellationRequested ? ExitCodes.Interrupted : ExitCodes.Failure;
        }

        var summary = outcome.Summary!;
        string summaryPath = Path.Combine(plan.RunDirectory, "summary.json");
        summary.Write(summaryPath);
        TrainingReport.WriteAfterRun(summary, plan.RunDirectory, Console.Out);
        Report(summary, summaryPath);
        return ExitCodes.Success;
    }

    private static void Report(RunSummary summary, string summaryPath)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"trained {summary.Steps} steps of {summary.Model} on {summary.WorldSize} worker(s) at {summary.SamplesPerSecond:F0} samples/s; final loss {summary.FinalLoss:F3}; restarts {summary.Restarts}"));
        if (summary.PeakRssBytesMax is long peak && peak > 0)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"peak RSS per worker: {string.Join(", ", summary.PeakRssBytes!.Select(b => $"{b / (1024.0 * 1024.0):F0}"))} MiB (largest {peak / (1024.0 * 1024.0):F0} MiB)"));
        }

        if (summary.ZeroShotTop1 is { } top1)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"zero-shot top-1 {top1:P1}, top-5 {summary.ZeroShotTop5:P1} on {summary.ZeroShotSamples} held-out images"));
        }

        if (summary.RecallAt1 is { } r1)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"retrieval recall@1 image->text {r1.ImageToText:P1}, text->image {r1.TextToImage:P1}"));
        }

        Console.WriteLine($"summary: {summaryPath}");
    }

    private static void WriteSecret(string path, string secret)
    {
        File.WriteAllText(path, secret + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    /// <summary>Settings from <c>--config FILE</c> and <c>--SETTING VALUE</c>; returns what it did not recognise.</summary>
    internal static (LaunchSettings Settings, List<string> Unrecognised) Parse(string[] args)
    {
        var settings = new LaunchSettings();
        var overrides = new List<(SettingTable.Setting Setting, string Value)>();
        var rest = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new ConfigException(arg, $"unexpected argument '{arg}'");
            }

            string name = arg[2..];
            string? value = null;
            int eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            else if (i + 1 < args.Length)
            {
                value = args[++i];
            }

            if (value is null)
            {
                throw new ConfigException(name, "needs a value");
            }

            if (name == "config")
            {
                settings = SettingTable.ApplyJson(settings, value);
            }
            else if (SettingTable.Find(name) is { } setting)
            {
                overrides.Add((setting, value));
            }
            else
            {
                rest.Add(name);
                rest.Add(value);
            }
        }

        // The command line overrides the JSON config wherever the two appear on the line.
        foreach (var (setting, value) in overrides)
        {
            settings = setting.Apply(settings, value);
        }

        return (settings, rest);
    }

    public static void PrintHelp(TextWriter output, bool serve)
    {
        output.WriteLine(serve
            ? "usage: coordinator serve [--bind ADDRESS] [--port N] [--advertise-host HOST] [--secret-file FILE] [--config FILE] [--SETTING VALUE ...]"
            : "usage: coordinator launch [--config FILE] [--SETTING VALUE ...]");
        output.WriteLine();
        output.WriteLine(serve
            ? "Runs the coordinator of a run whose workers are started elsewhere (Kubernetes, ssh, SLURM)."
            : "Trains a CLIP model with N worker processes on this machine; writes <run dir>/summary.json.");
        output.WriteLine("Settings (JSON config keys use snake_case; the command line overrides the config):");
        foreach (var s in SettingTable.Settings)
        {
            output.WriteLine($"  --{s.Name,-18} {s.Help}");
        }
    }
}

internal static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int BadConfiguration = 2;
    public const int Interrupted = 130;
}

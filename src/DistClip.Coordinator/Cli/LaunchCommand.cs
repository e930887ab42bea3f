using System.Globalization;
using System.Net;
using DistClip.Config;
using DistClip.Control;
using DistClip.Coordinator.Launchers;
using DistClip.Coordinator.Reports;
using DistClip.Coordinator.Runs;
using DistClip.Coordinator.Services;
using DistClip.Tls;
using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Cli;

/// <summary>
/// <c>coordinator launch</c>: checks the run, starts the control plane and the workers (here, by the
/// local launcher), shows progress, and writes the summary. <c>coordinator serve</c> is the same run
/// waiting for workers started elsewhere.
/// </summary>
internal static class LaunchCommand
{
    /// <summary>
    /// After an interrupt, how long workers get to hear "stop" and how long, after that, to exit
    /// before the launcher kills them: a worker blocked where it cannot hear must not hold the exit.
    /// </summary>
    private static readonly TimeSpan InterruptGrace = TimeSpan.FromSeconds(3);

    public static async Task<int> RunAsync(CoordinatorCommand command, ILoggerFactory loggers, CancellationToken ct)
    {
        bool serve = command.Serve;
        RunPlan plan;
        try
        {
            plan = Preflight.Check(command.Run, w => Console.Error.WriteLine($"warning: {w}"), serve ? null : GpuInventory.OfThisHost(), ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Ctrl-C while a large checkpoint was being verified for the resume: nothing has started.
            return ExitCodes.Interrupted;
        }
        catch (Exception e) when (e is ConfigException or Data.DataException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine($"Run 'coordinator {(serve ? "serve" : "launch")} --help' for the settings.");
            return ExitCodes.BadConfiguration;
        }

        var s = plan.Settings;
        string secret = command.Secret ?? RunSecret.Generate();
        var runSettings = new RunSettings
        {
            RunId = plan.RunId,
            Secret = secret,
            Config = s,
            RunDirectory = plan.RunDirectory,
            CheckpointRoot = plan.CheckpointRoot,
            ResumeFrom = plan.Resume?.Directory,
            JoinTimeout = serve ? TimeSpan.FromHours(1) : TimeSpan.FromMinutes(5),
        };

        using var run = new Membership(runSettings, loggers.CreateLogger<Membership>());
        // Local workers reach the coordinator on loopback; remote ones (hostfile, serve) need an address they can reach.
        bool loopbackOnly = !serve && (plan.Hosts is null || Launchers.Hostfile.AllLoopback(plan.Hosts));
        var bind = serve ? command.Bind : loopbackOnly ? IPAddress.Loopback : IPAddress.Any;
        string advertise = s.AdvertiseHost ?? (IPAddress.IsLoopback(bind) ? bind.ToString() : Dns.GetHostName());
        using var tls = command.TlsAuto ? GenerateTls(plan, s.Workers, advertise) : command.Tls;
        await using var server = await CoordinatorServer.StartAsync(run, bind, command.Port, advertise, ct, tls);
        Console.WriteLine($"run {plan.RunId}: {s.Workers} worker(s), {s.Training.Model} on {s.Training.Dataset}, " +
            $"{s.Training.Steps} steps at global batch {s.Training.GlobalBatch}" + (plan.Resume is null ? "" : $", resuming from step {plan.Resume.Step}"));
        Console.WriteLine($"coordinator listening at {server.Address}; logs and summary in {plan.RunDirectory}");

        using var progress = new ProgressReporter(s.Training.Steps, s.Training.LogEvery, Console.Out, interactive: !Console.IsOutputRedirected);
        run.ProgressReported += p => progress.Report(p.Step, p.TotalSteps, p.Loss, p.LearningRate, p.LogitScale, p.Samples);
        run.CheckpointReported += c => progress.Note($"checkpoint of step {c.Step} committed: {c.Directory}");
        run.GenerationAborted += why => progress.Note($"generation aborted: {why}; restarting from a survivor's state (or the latest checkpoint when none can serve)");
        run.WorkerFailed += failure => progress.Note($"worker failure: {failure}");
        // Generated certificates are one per slot; given ones are this process's, handed on to all.
        Func<int, WorkerTls>? workerTls = command.TlsAuto ? slot => WorkerTls.Directory(TlsDirectory(plan, $"worker-{slot}"))
            : command.Tls is null ? null
            : _ => new WorkerTls(command.TlsArguments);
        await using WorkerLauncher? launcher = serve ? null
            : plan.Hosts is null ? new LocalLauncher(run, server.Address, plan.WorkerGpus, loggers.CreateLogger<LocalLauncher>()) { Tls = workerTls }
            : new SshLauncher(run, server.Address, plan.Hosts, plan.WorkerGpus, (s.SshOptions ?? "").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries),
                s.RemoteWorker ?? $"dotnet {WorkerLauncher.WorkerDll}", loggers.CreateLogger<SshLauncher>(), command.MetricsBind)
            {
                Tls = workerTls,
            };
        if (serve)
        {
            string secretFile = Path.Combine(plan.RunDirectory, "secret");
            if (command.Secret is null)
            {
                WriteSecret(secretFile, secret);
            }

            Console.WriteLine($"waiting for {s.Workers} workers: worker --coordinator {server.Address} --secret-file {(command.Secret is null ? secretFile : "<yours>")}" +
                (tls is null ? "" : " --tls-dir <its certificate, key and this run's CA>"));
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
        bool interrupted = ct.IsCancellationRequested;
        await run.WaitUntilWorkersToldAsync(interrupted ? InterruptGrace : runSettings.HeartbeatInterval * 10);
        if (interrupted && launcher is not null)
        {
            await launcher.StopAsync(InterruptGrace);
        }

        if (!outcome.Succeeded)
        {
            Console.Error.WriteLine($"error: the run failed: {outcome.Error}");
            Console.Error.WriteLine($"worker logs: {Path.Combine(plan.RunDirectory, "logs")}");
            return interrupted ? ExitCodes.Interrupted : ExitCodes.Failure;
        }

        var summary = outcome.Summary!;
        string summaryPath = Path.Combine(plan.RunDirectory, "summary.json");
        try
        {
            summary.Write(summaryPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The run trained and its checkpoints stand; only the report could not be kept. Nothing
            // is lost: the summary goes to the output instead, and the exit status says it failed.
            Report(summary, summaryPath: null);
            Console.WriteLine(summary.ToJson());
            Console.Error.WriteLine($"error: the summary could not be written to {summaryPath}: {e.Message} (printed above instead)");
            return ExitCodes.Failure;
        }

        TrainingReport.WriteAfterRun(summary, plan.RunDirectory, Console.Out);
        Report(summary, summaryPath);
        return ExitCodes.Success;
    }

    private static void Report(RunSummary summary, string? summaryPath)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"trained {summary.Steps} steps of {summary.Model} on {summary.WorldSize} worker(s) at {summary.SamplesPerSecond:F0} samples/s; final loss {summary.FinalLoss:F3}; restarts {summary.Restarts}, steps redone {summary.StepsRedone}"));
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

        if (summaryPath is not null)
        {
            Console.WriteLine($"summary: {summaryPath}");
        }
    }

    /// <summary>
    /// <c>--tls auto</c>: a run-local CA and a certificate for the coordinator and for each worker slot
    /// under <c>&lt;run dir&gt;/tls</c>, naming loopback, this host and the hostfile's hosts; returns the coordinator's.
    /// </summary>
    private static RunTls GenerateTls(RunPlan plan, int workers, string advertise)
    {
        var hosts = new List<string> { advertise, Dns.GetHostName() };
        hosts.AddRange(plan.Hosts?.Select(h => h.Host) ?? []);
        var holders = Enumerable.Range(0, workers).Select(slot => $"worker-{slot}").Prepend("coordinator");
        RunCertificates.Generate(Path.Combine(plan.RunDirectory, "tls"), holders, hosts);
        return RunTls.LoadDirectory(TlsDirectory(plan, "coordinator"));
    }

    private static string TlsDirectory(RunPlan plan, string holder) => Path.Combine(plan.RunDirectory, "tls", holder);

    private static void WriteSecret(string path, string secret)
    {
        File.WriteAllText(path, secret + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
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

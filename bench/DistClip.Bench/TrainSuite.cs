using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;
using TorchSharp;

namespace DistClip.Bench;

/// <summary>One thread count's measurement of the single-process training step.</summary>
public sealed record TrainResult(
    string Model, int Threads, int Batch, int Steps, double SamplesPerSecond,
    Dictionary<string, double> PhaseSeconds, double PeakRssMiB);

/// <summary>
/// The <c>train</c> suite: the training step of one model at one batch size, measured in a fresh
/// child process per thread count (libtorch reads OMP_WAIT_POLICY and its thread pool once, at load).
/// </summary>
public static class TrainSuite
{
    public static async Task<List<TrainResult>> RunAsync(BenchArgs args, TextWriter output, CancellationToken ct)
    {
        var results = new List<TrainResult>();
        foreach (int threads in args.Threads)
        {
            var psi = new ProcessStartInfo(Environment.ProcessPath!)
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            foreach (string a in new[] { "train-child", "--threads", threads.ToString(CultureInfo.InvariantCulture), "--steps", args.Steps.ToString(CultureInfo.InvariantCulture),
                         "--warmup", args.Warmup.ToString(CultureInfo.InvariantCulture), "--batch", args.Batch.ToString(CultureInfo.InvariantCulture), "--model", args.Model })
            {
                psi.ArgumentList.Add(a);
            }

            // Spinning OpenMP workers steal the core the data loader needs; see docs/torchsharp.md, "Threads".
            psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
            psi.Environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
            using var child = Process.Start(psi) ?? throw new InvalidOperationException("could not start the benchmark child");
            string json = await child.StandardOutput.ReadToEndAsync(ct);
            await child.WaitForExitAsync(ct);
            if (child.ExitCode != 0)
            {
                throw new InvalidOperationException($"benchmark child ({threads} threads) exited with {child.ExitCode}");
            }

            string last = json.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
            results.Add(JsonSerializer.Deserialize<TrainResult>(last)!);
        }

        PrintTable(results, output);
        return results;
    }

    /// <summary>Runs inside the child: warm-up steps, then measured steps; prints one JSON line.</summary>
    public static int RunChild(BenchArgs args)
    {
        int threads = args.Threads[0];
        NativeAllocator.Configure(); // as the worker does
        TorchRuntime.SetThreads(threads);
        torch.manual_seed(1);
        var config = ClipConfig.Load(args.Model);
        var tokenizer = ClipTokenizer.CreateR50k();
        var dataset = FashionMnistDataset.Open(FashionMnistSplit.Train);
        var spec = DatasetSource.ImageSpecFor(config.Vision.Channels, config.Vision.ImageSize);
        var sampler = new GlobalBatchSampler(dataset.Count, args.Batch, 1, seed: 1);
        using var model = new ClipModel(config);
        using var loader = new ClipDataLoader(dataset, spec, tokenizer, config.Text.ContextLength, sampler, 0, new SamplerCursor(0, 0));
        using var trainer = new ClipTrainer(model, new OptimizerSettings(), args.Warmup + args.Steps, torch.CPU);
        var phases = new double[PhaseTimes.Names.Length];
        long samples = 0;
        var clock = new Stopwatch();
        for (int step = 0; step < args.Warmup + args.Steps; step++)
        {
            if (step == args.Warmup)
            {
                clock.Start();
            }

            var batch = loader.Next(CancellationToken.None);
            var metrics = trainer.Step(batch, loader.LastWait.TotalSeconds, CancellationToken.None);
            if (step >= args.Warmup)
            {
                samples += metrics.Samples;
                double[] t = metrics.Times.ToArray();
                for (int i = 0; i < t.Length; i++)
                {
                    phases[i] += t[i] / args.Steps;
                }
            }
        }

        double seconds = clock.Elapsed.TotalSeconds;
        var result = new TrainResult(config.Name, threads, args.Batch, args.Steps, samples / seconds,
            PhaseTimes.Names.Zip(phases).Where(p => p.First is not ("all_gather" or "all_reduce")).ToDictionary(p => p.First, p => p.Second),
            PeakRssMiB());
        Console.WriteLine(JsonSerializer.Serialize(result));
        return 0;
    }

    private static void PrintTable(List<TrainResult> results, TextWriter output)
    {
        var names = results.Count > 0 ? results[0].PhaseSeconds.Keys.ToList() : [];
        output.WriteLine($"{"model",-10} {"threads",7} {"batch",6} {"samples/s",10} " + string.Join(" ", names.Select(n => $"{n + " s",11}")) + $" {"peak RSS MiB",13}");
        foreach (var r in results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Model,-10} {r.Threads,7} {r.Batch,6} {r.SamplesPerSecond,10:F1} ") +
                string.Join(" ", names.Select(n => string.Create(CultureInfo.InvariantCulture, $"{r.PhaseSeconds[n],11:F3}"))) +
                string.Create(CultureInfo.InvariantCulture, $" {r.PeakRssMiB,13:F0}"));
        }
    }

    /// <summary>Peak resident set size of this process (VmHWM), in MiB.</summary>
    private static double PeakRssMiB()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
            }
        }

        return double.NaN;
    }
}

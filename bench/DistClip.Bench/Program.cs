using System.Text.Json;
using DistClip.Bench;

// dotnet run -c Release --project bench/DistClip.Bench -- train [--threads 1,2] [--steps 20] [--batch 256] [--json FILE]
// dotnet run -c Release --project bench/DistClip.Bench -- launch [--steps 30] [--batch 256] [--json FILE]
// dotnet run -c Release --project bench/DistClip.Bench -- chaos [--faults 10] [--steps 400] [--seed 1] [--json FILE]
// dotnet run -c Release --project bench/DistClip.Bench -- versus-pytorch [--steps 30] [--rounds 2] [--batch 256] [--json FILE]
// dotnet run -c Release --project bench/DistClip.Bench -- versus-pytorch-accuracy [--steps 300] [--eval-every 50] [--seed 42] [--json FILE]
// dotnet run -c Release --project bench/DistClip.Bench -- memory [--steps 3] [--quick] [--rows NAME,...] [--row-minutes 15] [--json FILE]
// The collectives suite runs each rank as a process of this same program.
if (DistClip.Collectives.Bench.CollectivesBenchmark.IsWorkerInvocation(args))
{
    return await DistClip.Collectives.Bench.CollectivesBenchmark.RunWorkerAsync(args, Console.In, Console.Out, CancellationToken.None);
}

if (args.Length > 0 && args[0] == "collectives")
{
    // dotnet run -c Release --project bench/DistClip.Bench -- collectives [--json FILE] [--quick] [--n 2,3,4]
    var collectiveOptions = DistClip.Collectives.Bench.CollectivesBenchOptions.Parse(args[1..]);
    var collectiveResults = await new DistClip.Collectives.Bench.CollectivesBenchmark().RunAsync(collectiveOptions, Console.Out, CancellationToken.None);
    return collectiveResults.AllReduce.Count > 0 ? 0 : 1;
}

if (args.Length > 0 && args[0] == "fuzz-http2")
{
    // dotnet run -c Release --project bench/DistClip.Bench -- fuzz-http2 [--cases 10000] [--seed 1] [--parallel 8] [--json FILE]
    return await FuzzHttp2Suite.RunAsync(args[1..], Console.Out, CancellationToken.None);
}

var options = BenchArgs.Parse(args);
switch (options.Suite)
{
    case "train-child":
        return TrainSuite.RunChild(options);
    case "train":
        var results = await TrainSuite.RunAsync(options, Console.Out, CancellationToken.None);
        if (options.Json is not null)
        {
            await File.WriteAllTextAsync(options.Json, JsonSerializer.Serialize(new { suite = "train", results }, new JsonSerializerOptions { WriteIndented = true }));
        }

        return 0;
    case "launch":
        var launches = await LaunchSuite.RunAsync(options with { Steps = options.StepsGiven ? options.Steps : 30 }, Console.Out, CancellationToken.None);
        if (options.Json is not null)
        {
            await File.WriteAllTextAsync(options.Json, JsonSerializer.Serialize(new { suite = "launch", results = launches }, new JsonSerializerOptions { WriteIndented = true }));
        }

        return 0;
    case "memory":
        IReadOnlyList<MemoryRow> selected;
        try
        {
            selected = MemorySuite.Select(options.Quick, options.Rows);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }

        var memory = await MemorySuite.RunAsync(selected, options, Console.Out, Console.Error, CancellationToken.None);
        if (options.Json is not null)
        {
            await File.WriteAllTextAsync(options.Json, JsonSerializer.Serialize(new { suite = "memory", results = memory }, new JsonSerializerOptions { WriteIndented = true }));
        }

        return 0;
    case "chaos":
        var chaos = await ChaosSuite.RunAsync(options, Console.Out, CancellationToken.None);
        if (options.Json is not null)
        {
            await File.WriteAllTextAsync(options.Json, JsonSerializer.Serialize(new { suite = "chaos", result = chaos }, new JsonSerializerOptions { WriteIndented = true }));
        }

        return chaos.Passed ? 0 : 1;
    case "versus-pytorch":
        VersusReport versus;
        try
        {
            versus = await VersusPyTorchSuite.RunAsync(options with { Steps = options.StepsGiven ? options.Steps : 30 }, Console.Out, CancellationToken.None);
        }
        catch (InvalidOperationException e)
        {
            // A missing dependency, a failed launch or a reference that refuses to report (reference BLAS) says why.
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }

        if (options.Json is not null)
        {
            await File.WriteAllTextAsync(options.Json, JsonSerializer.Serialize(new { suite = "versus-pytorch", result = versus }, new JsonSerializerOptions { WriteIndented = true }));
        }

        return 0;
    case "versus-pytorch-accuracy":
        IReadOnlyList<AccuracySuite.AccuracyRun> accuracy;
        try
        {
            accuracy = await AccuracySuite.RunAsync(options, Console.Out, CancellationToken.None);
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }

        if (options.Json is not null)
        {
            await File.WriteAllTextAsync(options.Json, JsonSerializer.Serialize(new { suite = "versus-pytorch-accuracy", runs = accuracy }, new JsonSerializerOptions { WriteIndented = true }));
        }

        return 0;
    case "attention":
        AttentionSuite.Run(options, Console.Out);
        return 0;
    case "sparse-rows":
        var sparseRows = await SparseRowsSuite.RunAsync(options, Console.Out, CancellationToken.None);
        if (options.Json is not null)
        {
            await File.WriteAllTextAsync(options.Json, JsonSerializer.Serialize(new { suite = "sparse-rows", results = sparseRows }, new JsonSerializerOptions { WriteIndented = true }));
        }

        return 0;
    default:
        Console.Error.WriteLine($"unknown suite '{options.Suite}'; suites: train, launch, memory, chaos, collectives, versus-pytorch, sparse-rows, attention, fuzz-http2");
        return 2;
}

using DistClip.Collectives.Bench;

// dotnet run -c Release --project bench/DistClip.Collectives.Bench -- [--json FILE] [--quick]
if (CollectivesBenchmark.IsWorkerInvocation(args))
{
    return await CollectivesBenchmark.RunWorkerAsync(args, Console.In, Console.Out, CancellationToken.None);
}

var options = CollectivesBenchOptions.Parse(args);
var results = await new CollectivesBenchmark().RunAsync(options, Console.Out, CancellationToken.None);
return results.AllReduce.Count > 0 ? 0 : 1;

using System.Globalization;
using System.Text.Json;
using DistClip.Collectives.Grpc;

namespace DistClip.Collectives.Bench;

/// <summary>
/// The collectives suite: raw TCP between two processes (the ceiling on this machine), then ring
/// all-reduce over gRPC at each world size and buffer size, then the all-gather of one step's
/// embeddings. Every rank is a process of its own; a host program calls <see cref="RunAsync"/> and
/// routes <see cref="IsWorkerInvocation"/> argument lists to <see cref="RunWorkerAsync"/>.
/// </summary>
public sealed class CollectivesBenchmark
{
    public const string WorkerFlag = "--collectives-worker";

    public static bool IsWorkerInvocation(string[] args) => args.Length > 0 && args[0] == WorkerFlag;

    public static Task<int> RunWorkerAsync(string[] args, TextReader input, TextWriter output, CancellationToken cancellationToken) =>
        BenchWorker.RunAsync(input, output, cancellationToken);

    public async Task<CollectivesBenchResults> RunAsync(CollectivesBenchOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        string machine = $"{Environment.ProcessorCount} cores, .NET {Environment.Version}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";
        output.WriteLine($"collectives suite ({machine})");

        var oneWay = new List<(double GBps, double SendCpu, double ReceiveCpu)>();
        var duplexRuns = new List<double>();
        for (int i = 0; i < options.TcpRepeats; i++)
        {
            oneWay.Add(await MeasureTcpAsync(options.TcpBytes, cancellationToken));
            duplexRuns.Add(await MeasureDuplexTcpAsync(options.TcpBytes, cancellationToken));
        }

        double tcp = Median(oneWay.Select(r => r.GBps).ToArray());
        double duplex = Median(duplexRuns);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"raw TCP loopback, 2 processes, 1 MiB writes, one way: {tcp:F2} GB/s (median of {oneWay.Count}: {string.Join(" ", oneWay.Select(r => r.GBps.ToString("F2", CultureInfo.InvariantCulture)))}; " +
            $"CPU per 64 MiB: sender {Median(oneWay.Select(r => r.SendCpu).ToArray()):F1} ms, receiver {Median(oneWay.Select(r => r.ReceiveCpu).ToArray()):F1} ms)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"raw TCP, both directions at once (an N=2 ring's traffic, no reduction): {duplex:F2} GB/s per direction = {duplex / tcp:F2} x one way: the ceiling of busbw at N=2"));
        output.WriteLine();
        output.WriteLine("all-reduce (ring over gRPC, one process per rank)");
        output.WriteLine("   N       size   iters     time/op    algbw GB/s    busbw GB/s   bus/TCP  bus/duplex   CPU/op/rank");

        var context = new Context(options, tcp, duplex, output, cancellationToken);
        var allReduce = new List<AllReduceResult>();
        var allGather = new List<AllGatherResult>();
        double? singleStream = null;
        foreach (int n in options.WorldSizes)
        {
            await using var cluster = await BenchCluster.StartAsync(n, LinkClient.Http2Direct, LinkServer.Http2Direct, cancellationToken);
            foreach (int bytes in options.AllReduceBytes)
            {
                allReduce.Add(await TimeAllReduceAsync(cluster, n, bytes, "direct", context));
            }

            if (n == 2)
            {
                // One direction only, like the raw TCP figure: the fair comparison for a single gRPC stream.
                int bytes = options.AllReduceBytes[^1];
                var (times, cpu) = await cluster.TimeAsync("broadcast", bytes / sizeof(float), (int)Math.Clamp(options.AllReduceVolumeBytes / bytes, 3, 200), cancellationToken);
                double gbps = bytes / Median(times) / 1e9;
                singleStream = gbps;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"   (broadcast of {bytes >> 20} MiB at N=2, one gRPC stream one way: {Median(times) * 1e3:F1} ms, {gbps:F3} GB/s, {gbps / tcp:F2} x TCP; CPU sender {cpu[0]:F1} ms, receiver {cpu[1]:F1} ms)"));
            }

            var (gather, _) = await cluster.TimeAsync("allgather", options.AllGatherFloats, options.AllGatherIterations, cancellationToken);
            var sorted = gather.Order().ToArray();
            allGather.Add(new AllGatherResult(n, options.AllGatherFloats, gather.Length, gather.Average() * 1e3, Median(gather) * 1e3, sorted[^1] * 1e3));
        }

        if (options.WorldSizes.Contains(2))
        {
            // The same service on the stock stack, and half of it, for comparison.
            foreach (var (client, server, label) in new[]
            {
                (LinkClient.Http2Direct, LinkServer.Kestrel, "direct client -> Kestrel"),
                (LinkClient.GrpcNetClient, LinkServer.Kestrel, "Grpc.Net.Client -> Kestrel: stock gRPC"),
            })
            {
                await using var other = await BenchCluster.StartAsync(2, client, server, cancellationToken);
                allReduce.Add(await TimeAllReduceAsync(other, 2, options.AllReduceBytes[^1], label, context));
            }
        }

        output.WriteLine();
        output.WriteLine($"all-gather of {options.AllGatherFloats} floats per rank (128 x 256, one step's embeddings)");
        output.WriteLine("   N   iters    mean ms     p50 ms     max ms");
        foreach (var g in allGather)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{g.WorldSize,4} {g.Iterations,7} {g.MeanMs,10:F3} {g.P50Ms,10:F3} {g.MaxMs,10:F3}"));
        }

        output.WriteLine("time/op: median over iterations of the slowest rank; busbw = algbw * 2(N-1)/N; bus/TCP: over raw TCP one way;");
        output.WriteLine("bus/duplex: over raw TCP per direction with both directions busy; CPU/op/rank: the busiest rank's process CPU time.");
        var results = new CollectivesBenchResults(tcp, oneWay.Select(r => r.GBps).ToArray(), duplex, singleStream, allReduce, allGather, machine);
        if (options.JsonPath is { } path)
        {
            await File.WriteAllTextAsync(path, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }), cancellationToken);
            output.WriteLine($"wrote {path}");
        }

        return results;
    }

    private static async Task<AllReduceResult> TimeAllReduceAsync(
        BenchCluster cluster, int n, int bytes, string client, Context context)
    {
        var (options, tcp, duplex, output, cancellationToken) = context;
        int iterations = (int)Math.Clamp(options.AllReduceVolumeBytes / bytes, 3, 200);
        var (times, cpuMs) = await cluster.TimeAsync("allreduce", bytes / sizeof(float), iterations, cancellationToken);
        double seconds = Median(times);
        double algbw = bytes / seconds / 1e9;
        double busbw = algbw * 2 * (n - 1) / n;
        var result = new AllReduceResult(n, bytes, iterations, seconds, algbw, busbw, busbw / tcp, busbw / duplex, cpuMs.Max() / 1e3, client);
        string note = client == "direct" ? string.Empty : $"   ({client})";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{n,4} {bytes / (1 << 20),7} MiB {iterations,6} {seconds * 1e3,9:F1} ms {algbw,12:F3} {busbw,13:F3} {busbw / tcp,9:F2} {busbw / duplex,11:F2} {cpuMs.Max(),10:F1} ms{note}"));
        return result;
    }

    /// <summary>Two processes each send <paramref name="bytes"/> to the other at once; the slower direction's GB/s.</summary>
    private static async Task<double> MeasureDuplexTcpAsync(long bytes, CancellationToken ct)
    {
        await using var a = WorkerProcess.Start();
        await using var b = WorkerProcess.Start();
        a.Send("tcp-listen");
        b.Send("tcp-listen");
        string portA = (await a.ExpectAsync("PORT", ct))[0];
        string portB = (await b.ExpectAsync("PORT", ct))[0];
        a.Send($"tcp-send {portB} {bytes}");
        b.Send($"tcp-send {portA} {bytes}");
        var rates = new List<double>();
        foreach (var w in new[] { a, b })
        {
            // Each says SENT when its sending is done and TCP when its receiving is, in either order.
            for (int line = 0; line < 2; line++)
            {
                var (tag, words) = await w.ExpectAnyAsync(["TCP", "SENT"], ct);
                if (tag == "TCP")
                {
                    rates.Add(double.Parse(words[0], CultureInfo.InvariantCulture) / double.Parse(words[1], CultureInfo.InvariantCulture) / 1e9);
                }
            }
        }

        return rates.Min();
    }

    private static async Task<(double GBps, double SenderCpuMsPer64MiB, double ReceiverCpuMsPer64MiB)> MeasureTcpAsync(long bytes, CancellationToken ct)
    {
        await using var receiver = WorkerProcess.Start();
        await using var sender = WorkerProcess.Start();
        receiver.Send("tcp-listen");
        string port = (await receiver.ExpectAsync("PORT", ct))[0];
        sender.Send($"tcp-send {port} {bytes}");
        double senderCpu = double.Parse((await sender.ExpectAsync("SENT", ct))[0], CultureInfo.InvariantCulture);
        var result = await receiver.ExpectAsync("TCP", ct);
        double per64MiB = (64 << 20) / (double)bytes;
        return (double.Parse(result[0], CultureInfo.InvariantCulture) / double.Parse(result[1], CultureInfo.InvariantCulture) / 1e9,
            senderCpu * per64MiB, double.Parse(result[2], CultureInfo.InvariantCulture) * per64MiB);
    }

    private sealed record Context(CollectivesBenchOptions Options, double Tcp, double Duplex, TextWriter Output, CancellationToken CancellationToken);

    private static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>N worker processes joined in one group.</summary>
    private sealed class BenchCluster(WorkerProcess[] workers) : IAsyncDisposable
    {
        public static async Task<BenchCluster> StartAsync(int n, LinkClient client, LinkServer server, CancellationToken ct)
        {
            var workers = Enumerable.Range(0, n).Select(_ => WorkerProcess.Start()).ToArray();
            var ports = new List<string>();
            foreach (var w in workers)
            {
                w.Send($"endpoint {client} {server}");
                ports.Add((await w.ExpectAsync("PORT", ct))[0]);
            }

            string peers = string.Join(',', ports.Select(p => $"http://127.0.0.1:{p}"));
            for (int r = 0; r < n; r++)
            {
                workers[r].Send($"PEERS {r} 1 {peers}");
            }

            foreach (var w in workers)
            {
                await w.ExpectAsync("JOINED", ct);
            }

            return new BenchCluster(workers);
        }

        /// <summary>Per iteration the slowest rank's seconds, and each rank's CPU milliseconds per operation.</summary>
        public async Task<(double[] Seconds, double[] CpuMs)> TimeAsync(string op, int floats, int iterations, CancellationToken ct)
        {
            foreach (var w in workers)
            {
                w.Send($"{op} {floats} {iterations}");
            }

            var perRank = new List<double[]>();
            foreach (var w in workers)
            {
                perRank.Add((await w.ExpectAsync("TIME", ct)).Select(t => double.Parse(t, CultureInfo.InvariantCulture)).ToArray());
            }

            return (Enumerable.Range(1, iterations).Select(i => perRank.Max(r => r[i])).ToArray(), perRank.Select(r => r[0]).ToArray());
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var w in workers)
            {
                await w.DisposeAsync();
            }
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using DistClip.Collectives.Grpc;

namespace DistClip.Collectives.Bench;

/// <summary>
/// Worker mode. Lines in: <c>tcp-listen</c> | <c>tcp-send PORT BYTES</c> | <c>endpoint [CLIENT [SERVER]]</c> (LinkClient, LinkServer names) |
/// <c>PEERS RANK GEN URI,URI,...</c> | <c>allreduce FLOATS ITERS</c> | <c>allgather FLOATS ITERS</c> | <c>exit</c>.
/// Lines out: PORT, TCP, JOINED, TIME (seconds per op, one value per iteration), ERR.
/// </summary>
internal static class BenchWorker
{
    private const string Secret = "collectives-bench";

    public static async Task<int> RunAsync(TextReader input, TextWriter output, CancellationToken cancellationToken)
    {
        GrpcCollectiveEndpoint? endpoint = null;
        ICollectiveGroup? group = null;
        Task? tcpReceive = null;
        try
        {
            while (await input.ReadLineAsync(cancellationToken) is { } line)
            {
                var w = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                switch (w[0])
                {
                    case "exit":
                        return 0;
                    case "tcp-listen":
                        var listener = new TcpListener(IPAddress.Loopback, 0);
                        listener.Start();
                        Say(output, $"PORT {((IPEndPoint)listener.LocalEndpoint).Port}");
                        tcpReceive = ReceiveTcpAsync(listener, output, cancellationToken);
                        break;
                    case "tcp-send":
                        var sendCpu = Process.GetCurrentProcess().TotalProcessorTime;
                        await SendTcpAsync(int.Parse(w[1], CultureInfo.InvariantCulture), long.Parse(w[2], CultureInfo.InvariantCulture), cancellationToken);
                        Say(output, "SENT " + (Process.GetCurrentProcess().TotalProcessorTime - sendCpu).TotalMilliseconds.ToString("R", CultureInfo.InvariantCulture));
                        break;
                    case "endpoint":
                        var transport = new GrpcTransportOptions { Secret = Secret };
                        transport = transport with
                        {
                            Client = w.Length > 1 ? Enum.Parse<LinkClient>(w[1]) : LinkClient.Http2Direct,
                            Server = w.Length > 2 ? Enum.Parse<LinkServer>(w[2]) : LinkServer.Http2Direct,
                            KestrelBlockBytes = Knob("DISTCLIP_BENCH_BLOCK_BYTES", transport.KestrelBlockBytes),
                            StreamWindowBytes = Knob("DISTCLIP_BENCH_STREAM_WINDOW_BYTES", transport.StreamWindowBytes),
                        };
                        endpoint = await GrpcCollectiveEndpoint.StartAsync(transport, cancellationToken: cancellationToken);
                        Say(output, $"PORT {endpoint.Address.Port}");
                        break;
                    case "PEERS":
                        int rank = int.Parse(w[1], CultureInfo.InvariantCulture);
                        var peers = w[3].Split(',').Select(u => new Uri(u)).ToArray();
                        long generation = long.Parse(w[2], CultureInfo.InvariantCulture);
                        var membership = new CollectiveMembership(rank, peers, generation,
                            new RingTokens(TokenOf(generation, rank), TokenOf(generation, (rank - 1 + peers.Length) % peers.Length)));
                        group = await endpoint!.JoinAsync(membership, new CollectiveOptions
                        {
                            OperationTimeout = TimeSpan.FromMinutes(2),
                            ChunkBytes = Knob("DISTCLIP_BENCH_CHUNK_BYTES", CollectiveOptions.DefaultChunkBytes),
                        }, cancellationToken);
                        Say(output, "JOINED");
                        break;
                    case "allreduce":
                    case "allgather":
                    case "broadcast":
                        var (times, cpuMs) = await TimeAsync(group!, w[0], int.Parse(w[1], CultureInfo.InvariantCulture), int.Parse(w[2], CultureInfo.InvariantCulture), cancellationToken);
                        Say(output, "TIME " + cpuMs.ToString("R", CultureInfo.InvariantCulture) + " " + string.Join(' ', times.Select(t => t.ToString("R", CultureInfo.InvariantCulture))));
                        break;
                    default:
                        Say(output, $"ERR unknown command {w[0]}");
                        break;
                }
            }

            return 0;
        }
        catch (Exception ex)
        {
            Say(output, $"ERR {ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}");
            return 1;
        }
        finally
        {
            if (tcpReceive is not null)
            {
                await tcpReceive.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            if (group is not null)
            {
                await group.DisposeAsync();
            }

            if (endpoint is not null)
            {
                await endpoint.DisposeAsync();
            }
        }
    }

    /// <summary>Per-iteration seconds after warm-up and a barrier, and this process's CPU milliseconds per timed operation.</summary>
    private static async Task<(double[] Seconds, double CpuMs)> TimeAsync(ICollectiveGroup group, string op, int floats, int iterations, CancellationToken ct)
    {
        var data = new float[floats];
        var gathered = op == "allgather" ? new float[floats * group.WorldSize] : [];
        Array.Fill(data, 1f);
        Task Run() => op switch
        {
            "allreduce" => group.AllReduceSumAsync(data, ct),
            "broadcast" => group.BroadcastAsync(data, 0, ct),
            _ => group.AllGatherAsync(data, gathered, ct),
        };

        // Warm up on some 1 GiB of traffic (the same count on every rank) so that tiered JIT has moved the
        // hot path through its instrumented tier to optimized code, as it has in a worker a few steps in:
        // with 256 MiB the 64 MiB rows still ran partly unoptimized code (measured 78 ms vs 64 ms per op).
        int warmUps = (int)Math.Clamp((1L << 30) / Math.Max(1, floats * 4L), 8, 2000);
        for (int i = 0; i < warmUps; i++)
        {
            await Run();
        }

        await group.BarrierAsync(ct);
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var times = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            if (op == "allreduce")
            {
                Array.Fill(data, 1f); // keep values finite; not timed
            }

            long start = Stopwatch.GetTimestamp();
            await Run();
            times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        return (times, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds / iterations);
    }

    private static async Task ReceiveTcpAsync(TcpListener listener, TextWriter output, CancellationToken ct)
    {
        using var socket = await listener.AcceptSocketAsync(ct);
        listener.Stop();
        var buffer = new byte[1 << 20];
        long total = 0;
        long start = 0;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
        {
            if (total == 0)
            {
                start = Stopwatch.GetTimestamp();
            }

            total += n;
        }

        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        double cpuMs = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds;
        Say(output, string.Create(CultureInfo.InvariantCulture, $"TCP {total} {seconds:R} {cpuMs:R}"));
    }

    private static async Task SendTcpAsync(int port, long bytes, CancellationToken ct)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
        var buffer = new byte[1 << 20];
        Random.Shared.NextBytes(buffer);
        for (long sent = 0; sent < bytes; sent += buffer.Length)
        {
            await socket.SendAsync(buffer, SocketFlags.None, ct);
        }

        socket.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Experiment knobs: transport settings from the environment, so variants run without a rebuild.</summary>
    /// <summary>A rank token for the bench's coordinator-less rings: every worker computes the same one (real runs get theirs from the coordinator).</summary>
    private static byte[] TokenOf(long generation, int rank) =>
        System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{Secret}/{generation}/{rank}"));

    private static int Knob(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), CultureInfo.InvariantCulture, out int value) ? value : fallback;

    private static void Say(TextWriter output, string line)
    {
        lock (output)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }
}

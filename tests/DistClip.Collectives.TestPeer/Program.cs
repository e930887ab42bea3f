// A rank for the multi-process tests. Protocol, one line each way:
//   args:  --rank R --secret S [--timeout-ms T]
//   out:   PORT <port>                      once its endpoint listens on 127.0.0.1
//   in:    PEERS <generation> <uri,uri,...>  then  out: JOINED
//   in:    allreduce|allgather|broadcast <count> <seed> [root] | barrier | stall | exit
//          reducescatter <count> <seed> <c0,c1,...>   count = the sum of the per-rank counts; the result is the own block
//          shift <count> <seed> [rank]                 rank r sends PeerData.ShiftCount(count, r) elements; the rank
//                                                      named last expects one element more than its left neighbour sends
//   out:   STARTED, then OK <sha256> <worst-error-ratio> <elapsed-ms>  or  ERR <type> <elapsed-ms> <message>
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DistClip.Collectives;
using DistClip.Collectives.Grpc;
using DistClip.Collectives.TestPeer;

int rank = int.Parse(Arg("--rank")!, CultureInfo.InvariantCulture);
var timeout = TimeSpan.FromMilliseconds(double.Parse(Arg("--timeout-ms") ?? "30000", CultureInfo.InvariantCulture));
await using var endpoint = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = Arg("--secret")! });
Say($"PORT {endpoint.Address.Port}");

ICollectiveGroup? group = null;
while (Console.ReadLine() is { } line)
{
    var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    if (words.Length == 0)
    {
        continue;
    }

    if (words[0] == "exit")
    {
        break;
    }

    if (words[0] == "PEERS")
    {
        var peers = words[2].Split(',').Select(u => new Uri(u)).ToArray();
        long generation = long.Parse(words[1], CultureInfo.InvariantCulture);
        var membership = new CollectiveMembership(rank, peers, generation, PeerTokens.For(Arg("--secret")!, generation, rank, peers.Length));
        group = await endpoint.JoinAsync(membership, new CollectiveOptions { OperationTimeout = timeout }, CancellationToken.None);
        Say("JOINED");
        continue;
    }

    if (words[0] == "stall")
    {
        Say("STALLING");
        continue;
    }

    await RunAsync(group!, words);
}

if (group is not null)
{
    await group.DisposeAsync();
}

static async Task RunAsync(ICollectiveGroup group, string[] words)
{
    int count = words.Length > 1 ? int.Parse(words[1], CultureInfo.InvariantCulture) : 0;
    int seed = words.Length > 2 ? int.Parse(words[2], CultureInfo.InvariantCulture) : 0;
    int n = group.WorldSize;
    float[] result;
    var clock = Stopwatch.StartNew();
    Say("STARTED");
    try
    {
        switch (words[0])
        {
            case "allreduce":
                result = PeerData.Fill(count, seed, group.Rank);
                clock.Restart();
                await group.AllReduceSumAsync(result, CancellationToken.None);
                break;
            case "allgather":
                result = new float[count * n];
                var local = PeerData.Fill(count, seed, group.Rank);
                clock.Restart();
                await group.AllGatherAsync(local, result, CancellationToken.None);
                break;
            case "broadcast":
                int root = int.Parse(words[3], CultureInfo.InvariantCulture);
                result = PeerData.Fill(count, seed, group.Rank);
                clock.Restart();
                await group.BroadcastAsync(result, root, CancellationToken.None);
                break;
            case "reducescatter":
                var counts = words[3].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
                var data = PeerData.Fill(count, seed, group.Rank);
                clock.Restart();
                await group.ReduceScatterSumAsync(data, counts, CancellationToken.None);
                result = data.AsSpan(counts.Take(group.Rank).Sum(), counts[group.Rank]).ToArray();
                break;
            case "shift":
                int left = (group.Rank - 1 + n) % n;
                int longer = words.Length > 3 && int.Parse(words[3], CultureInfo.InvariantCulture) == group.Rank ? 1 : 0;
                var send = PeerData.Fill(PeerData.ShiftCount(count, group.Rank), seed, group.Rank);
                result = new float[PeerData.ShiftCount(count, left) + longer];
                clock.Restart();
                await group.ShiftAsync(send, result, CancellationToken.None);
                break;
            case "barrier":
                result = [];
                await group.BarrierAsync(CancellationToken.None);
                break;
            default:
                throw new InvalidOperationException($"unknown command {words[0]}");
        }
    }
    catch (Exception ex)
    {
        Say($"ERR {ex.GetType().Name} {clock.ElapsedMilliseconds} {ex.Message.ReplaceLineEndings(" ")}");
        return;
    }

    double elapsed = clock.Elapsed.TotalMilliseconds;
    double worst = words[0] switch
    {
        "allreduce" => PeerData.WorstErrorRatio(result, seed, n),
        "allgather" => Mismatches(result, r => PeerData.Fill(count, seed, r)),
        "broadcast" => Mismatches(result, _ => PeerData.Fill(count, seed, int.Parse(words[3], CultureInfo.InvariantCulture))),
        "reducescatter" => PeerData.WorstErrorRatio(
            result, seed, n, words[3].Split(',').Take(group.Rank).Sum(c => long.Parse(c, CultureInfo.InvariantCulture))),
        "shift" => Mismatches(result, _ => PeerData.Fill(PeerData.ShiftCount(count, (group.Rank - 1 + n) % n), seed, (group.Rank - 1 + n) % n)),
        _ => 0,
    };
    string sha = Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(result.AsSpan())));
    Say(string.Create(CultureInfo.InvariantCulture, $"OK {sha} {worst:R} {elapsed:F1}"));
}

// Number of elements whose bits differ from the expected blocks laid end to end (0 passes).
static double Mismatches(float[] result, Func<int, float[]> expectedBlock)
{
    int bad = 0, at = 0;
    for (int b = 0; at < result.Length; b++)
    {
        var expected = expectedBlock(b);
        for (int i = 0; i < expected.Length && at < result.Length; i++, at++)
        {
            bad += BitConverter.SingleToInt32Bits(result[at]) == BitConverter.SingleToInt32Bits(expected[i]) ? 0 : 1;
        }
    }

    return bad;
}

static void Say(string line)
{
    Console.Out.WriteLine(line);
    Console.Out.Flush();
}

string? Arg(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

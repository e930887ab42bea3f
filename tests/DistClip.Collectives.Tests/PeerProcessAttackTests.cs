using System.Diagnostics;
using System.Globalization;
using System.Net;
using DistClip.Collectives.Grpc.Http2;
using Xunit.Abstractions;
using static DistClip.Collectives.Tests.RawHttp2;

namespace DistClip.Collectives.Tests;

/// <summary>
/// Probe 11 as it was made: strangers against a real peer process's link port at its default
/// settings (handshake deadline 10 s, 32 unauthenticated connections, 32 control frames), with the
/// target's memory read from /proc.
/// </summary>
[Collection(MultiProcessCollection.Name)]
public sealed class PeerProcessAttackTests(ITestOutputHelper output)
{
    private static readonly TimeSpan DefaultHandshake = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Strangers_that_flood_PINGs_or_stall_are_closed_in_time_and_cost_the_peer_little_memory()
    {
        await using var peer = await PeerProcess.StartAsync(0, "probe-11-secret", TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(60));
        var endpoint = new IPEndPoint(IPAddress.Loopback, peer.Port);
        // A first stranger warms the listener's code paths, so that what is measured is the connections.
        await ServedAsync(endpoint);
        long baseline = Status(peer.Pid, "VmRSS");
        File.WriteAllText($"/proc/{peer.Pid}/clear_refs", "5"); // resets VmHWM to the current RSS

        var flood = Enumerable.Range(0, 1000).SelectMany(_ => Ping()).ToArray();
        var clock = Stopwatch.StartNew();
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
        {
            // Even: a 4 KiB receive buffer and 1,000 PINGs whose replies back up. Odd: the preface,
            // then silence, which only the handshake deadline ends.
            bool flooding = i % 2 == 0;
            using var socket = await ConnectAsync(endpoint, receiveBuffer: flooding ? 4096 : 0);
            await TrySendAsync(socket, flooding ? (byte[])[.. Http2Frames.Preface, .. Settings(), .. flood] : [.. Http2Frames.Preface, .. Settings()]);
            var (_, closed) = await ReadUntilClosedAsync(socket, Patience);
            return (Flooding: flooding, Closed: closed, clock.Elapsed);
        }));
        long peak = Status(peer.Pid, "VmHWM");
        double perConnection = (peak - baseline) / 40.0;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"RSS before {baseline / 1024.0:F1} MiB, peak during {peak / 1024.0:F1} MiB: {perConnection:F0} KiB per connection; last closed after {outcomes.Max(o => o.Elapsed).TotalSeconds:F1} s"));

        Assert.All(outcomes, o => Assert.True(o.Closed, $"a {(o.Flooding ? "flooding" : "silent")} stranger was still open after {Patience}"));
        Assert.All(outcomes, o => Assert.True(o.Elapsed < DefaultHandshake + TimeSpan.FromSeconds(15),
            $"a {(o.Flooding ? "flooding" : "silent")} stranger was closed after {o.Elapsed}, past the 10 s handshake deadline"));
        Assert.True(peak - baseline < 100 << 10, $"the peer's RSS grew {(peak - baseline) / 1024.0:F1} MiB under 40 strangers");
        Assert.False(peer.HasExited);
        await ServedAsync(endpoint); // and it still answers the next one
    }

    /// <summary>A stranger sends the preface and gets the server's SETTINGS: the port serves.</summary>
    private static async Task ServedAsync(IPEndPoint endpoint)
    {
        using var socket = await ConnectAsync(endpoint);
        await TrySendAsync(socket, Http2Frames.Preface.ToArray());
        var header = new byte[Http2Frames.HeaderLength];
        int n = await socket.ReceiveAsync(header.AsMemory(), System.Net.Sockets.SocketFlags.None).AsTask().WaitAsync(Patience);
        Assert.True(n > 3 && header[3] == Http2Frames.Settings, $"the peer answered the preface with {n} bytes, not SETTINGS");
    }

    /// <summary>A line of /proc/PID/status in KiB (VmRSS, VmHWM).</summary>
    private static long Status(int pid, string field)
    {
        string line = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}

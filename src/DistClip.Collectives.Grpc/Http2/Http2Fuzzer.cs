using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DistClip.Collectives.Transport;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// Feeds mutated byte streams to both direct link ends over real loopback sockets: a recorded valid
/// exchange (handshake, control frames, a message, the end) with frames dropped, duplicated,
/// reordered, re-flagged, given wrong lengths or random neighbours, and bytes flipped or cut. Each
/// case must end (served, refused or failed) within a deadline, with nothing thrown that the end's
/// contract does not name. The test suite runs a few hundred cases; the bench's <c>fuzz-http2</c>
/// suite as many as asked. Cases are derived from (seed, case number) alone, so a failing case
/// replays on its own.
/// </summary>
internal static partial class Http2Fuzzer
{
    private const string Secret = "fuzz-secret";

    // The rank token the recorded neighbour presents, and its group expects: cases that keep it intact get past admission.
    private static readonly byte[] Token = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];

    /// <summary>What a run saw: outcomes by name, cases that did not end in time, and memory before and after.</summary>
    public sealed record Report(
        int Cases, int Hung, int Unexpected, IReadOnlyDictionary<string, int> Outcomes, IReadOnlyList<string> Problems,
        long ManagedGrowthBytes, long WorkingSetGrowthBytes, TimeSpan Elapsed);

    public static async Task<Report> RunAsync(int cases, int seed, int parallelism, TimeSpan deadline, CancellationToken cancellationToken)
    {
        long managedBefore = GC.GetTotalMemory(forceFullCollection: true);
        long workingSetBefore = Environment.WorkingSet;
        long workingSetPeak = workingSetBefore;
        var clock = Stopwatch.StartNew();
        var outcomes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var problems = new List<string>();
        int hung = 0;
        int unexpected = 0;
        for (int first = 0; first < cases; first += parallelism)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = Enumerable.Range(first, Math.Min(parallelism, cases - first)).Select(i => RunCaseAsync(seed, i, deadline));
            foreach (var (number, outcome, problem) in await Task.WhenAll(batch).ConfigureAwait(false))
            {
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                if (problem is not null)
                {
                    problems.Add($"case {number} (seed {seed}): {problem}");
                    hung += problem.StartsWith("hung", StringComparison.Ordinal) ? 1 : 0;
                    unexpected += problem.StartsWith("hung", StringComparison.Ordinal) ? 0 : 1;
                }
            }

            workingSetPeak = Math.Max(workingSetPeak, Environment.WorkingSet);
        }

        long managedAfter = GC.GetTotalMemory(forceFullCollection: true);
        return new Report(cases, hung, unexpected, outcomes, problems, managedAfter - managedBefore, workingSetPeak - workingSetBefore, clock.Elapsed);
    }

    /// <summary>One case: even numbers attack the server end, odd ones the client end.</summary>
    public static async Task<(int Number, string Outcome, string? Problem)> RunCaseAsync(int seed, int number, TimeSpan deadline)
    {
        var random = new Random(HashCode.Combine(seed, number) & int.MaxValue);
        bool server = number % 2 == 0;
        byte[] input = Mutate(server ? ServerRecording() : ClientRecording(), random, keepPreface: server);
        try
        {
            var (outcome, problem) = server
                ? await ServerCaseAsync(input, deadline).ConfigureAwait(false)
                : await ClientCaseAsync(input, deadline).ConfigureAwait(false);
            return (number, (server ? "server: " : "client: ") + outcome, problem);
        }
        catch (Exception ex)
        {
            return (number, "escaped", $"{ex.GetType().Name} escaped: {ex.Message}");
        }
    }

    private static async Task<(string Outcome, string? Problem)> ServerCaseAsync(byte[] input, TimeSpan deadline)
    {
        var options = new GrpcTransportOptions { Secret = Secret, HandshakeTimeout = deadline / 2 };
        var acceptor = new LinkAcceptor(Secret, TimeSpan.FromMilliseconds(200), TimeProvider.System, NullLogger.Instance);
        var link = acceptor.Register(1, rank: 1, worldSize: 2, new PeerInfo(0, "fuzz"), Token);
        var drained = DrainAsync(link);
        var (client, accepted) = await ConnectPairAsync().ConfigureAwait(false);
        using var _ = client;
        var connection = new Http2LinkConnection(accepted, options);
        var run = Task.Run(() => connection.RunAsync(acceptor, CancellationToken.None));

        // Read concurrently, so that the server's replies never wait on this side.
        var reading = ReadUntilClosedAsync(client, deadline);
        await TrySendAsync(client, input).ConfigureAwait(false);
        TryShutdown(client);
        bool closed = await reading.ConfigureAwait(false);
        client.Dispose();
        bool ended = await Within(run, deadline).ConfigureAwait(false);
        link.Close(null);
        int frames = await drained.WaitAsync(deadline).ConfigureAwait(false);
        if (!closed || !ended)
        {
            return ("hung", $"hung: the server end {(closed ? "did not finish" : "kept the connection open")} within {deadline}");
        }

        if (run.IsFaulted)
        {
            return ("escaped", $"{run.Exception!.InnerException!.GetType().Name} escaped the server end");
        }

        string outcome = connection.Failure switch
        {
            null => frames > 0 ? "served a frame" : "served",
            Http2ConnectionException error => Http2Frames.ErrorName(error.Code),
            var other => other.GetType().Name,
        };
        return (outcome, null);
    }

    private static async Task<(string Outcome, string? Problem)> ClientCaseAsync(byte[] input, TimeSpan deadline)
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var address = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}/");
        var metadata = new Dictionary<string, string>
        {
            [LinkHeaders.Secret] = Secret,
            [LinkHeaders.Generation] = "1",
            [LinkHeaders.Rank] = "0",
            [LinkHeaders.WorldSize] = "2",
            [LinkHeaders.RankToken] = Convert.ToHexString(Token),
        };
        using var timeout = new CancellationTokenSource(deadline);
        var start = Http2LinkCall.StartAsync(address, LinkMethods.ClientOpen.FullName, metadata, timeout.Token);
        using var server = await listener.AcceptAsync(timeout.Token).ConfigureAwait(false);
        using var call = await start.ConfigureAwait(false);
        var reading = ReadUntilClosedAsync(server, deadline);
        var write = call.WriteAsync(new FrameHeader(1, 1, CollectiveOperation.AllReduce, 0, 2048), new byte[2048], timeout.Token).AsTask();
        await TrySendAsync(server, input).ConfigureAwait(false);
        TryShutdown(server);

        string outcome;
        try
        {
            await call.Completion.WaitAsync(deadline).ConfigureAwait(false);
            outcome = "completed";
        }
        catch (RpcException ex)
        {
            outcome = ex.StatusCode.ToString();
        }
        catch (TimeoutException)
        {
            return ("hung", $"hung: the call did not end within {deadline}");
        }

        try
        {
            await write.WaitAsync(deadline).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RpcException or OperationCanceledException)
        {
            // A write on a failed call fails; that is its contract.
        }
        catch (TimeoutException)
        {
            return ("hung", $"hung: a write did not end within {deadline}");
        }
        catch (Exception ex)
        {
            return ("escaped", $"{ex.GetType().Name} escaped a write: {ex.Message}");
        }

        call.Dispose();
        return await reading.ConfigureAwait(false) ? (outcome, null) : ("hung", "hung: the client kept its connection open after Dispose");
    }

    private static async Task<int> DrainAsync(IncomingLink link)
    {
        int frames = 0;
        try
        {
            while (true)
            {
                using var frame = await link.ReceiveAsync(CancellationToken.None).ConfigureAwait(false);
                frames++;
            }
        }
        catch (PeerFailedException)
        {
            return frames;
        }
    }

    private static async Task<(Socket Client, Socket Accepted)> ConnectPairAsync()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(listener.LocalEndPoint!).ConfigureAwait(false);
        return (client, await listener.AcceptAsync().ConfigureAwait(false));
    }

    private static async Task<bool> Within(Task task, TimeSpan deadline)
    {
        try
        {
            await task.WaitAsync(deadline).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private static async Task TrySendAsync(Socket socket, ReadOnlyMemory<byte> bytes)
    {
        try
        {
            while (!bytes.IsEmpty)
            {
                bytes = bytes[await socket.SendAsync(bytes, SocketFlags.None).ConfigureAwait(false)..];
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The end under test closed first: what it is allowed to do.
        }
    }

    private static void TryShutdown(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already reset by the other end.
        }
    }

    /// <summary>Reads and drops until the other side closes (end of stream or reset); false if it had not within <paramref name="within"/>.</summary>
    private static async Task<bool> ReadUntilClosedAsync(Socket socket, TimeSpan within)
    {
        using var deadline = new CancellationTokenSource(within);
        var buffer = new byte[16 << 10];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token).ConfigureAwait(false) > 0)
            {
            }

            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}

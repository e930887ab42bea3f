using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace DistClip.Coordinator.Tests;

/// <summary>The class's <c>coordinator serve</c>, and how its tests speak to it: HTTP/2 calls, raw frames, /proc.</summary>
public sealed partial class ControlPlaneLimitTests
{
    public sealed class ServeFixture : IAsyncLifetime
    {
        private readonly string _dir = Path.Combine(Path.GetTempPath(), "distclip-limits-" + Guid.NewGuid().ToString("N")[..8]);
        private CoordinatorProcess? _process;

        public Uri Address { get; private set; } = null!;

        public int Pid => _process!.Id;

        /// <summary>Open descriptors once it listens, before any probe.</summary>
        public int BaselineFds { get; private set; }

        public async Task InitializeAsync()
        {
            _process = CoordinatorProcess.Start(new Dictionary<string, string> { ["DISTCLIP_SECRET"] = Secret },
                "serve", "--bind", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--workers", "1", "--steps", "1",
                "--run-dir", Path.Combine(_dir, "run"), "--checkpoint-dir", Path.Combine(_dir, "checkpoints"));
            var listening = await _process.WaitForLineAsync(@"listening at (\S+);", TimeSpan.FromSeconds(60));
            Address = new Uri(listening.Groups[1].Value);
            BaselineFds = OpenFds(Pid);
        }

        public async Task DisposeAsync()
        {
            if (_process is not null)
            {
                await _process.DisposeAsync();
            }

            Directory.Delete(_dir, recursive: true);
        }
    }

    /// <summary>How many of the first <paramref name="streams"/> streams the server ended, reading until all are (or it closes).</summary>
    private static async Task<int> StreamsEnded(RawHttp2Connection connection, int streams, CancellationToken ct)
    {
        var ended = new HashSet<int>();
        while (ended.Count < streams && await connection.ReadFrameAsync(ct) is { } frame)
        {
            bool ends = frame.Type == RawHttp2Connection.RstStream
                || (frame.Type is RawHttp2Connection.Headers or RawHttp2Connection.Data && (frame.Flags & RawHttp2Connection.EndStream) != 0);
            if (ends && frame.StreamId != 0)
            {
                ended.Add(frame.StreamId);
            }
        }

        return ended.Count;
    }


    private static async Task<RawHttp2Connection.Frame?> ServerSettings(RawHttp2Connection connection, CancellationToken ct)
    {
        try
        {
            await connection.SendPrefaceAsync(ct);
        }
        catch (IOException)
        {
            return null; // closed before the preface went out: refused
        }

        while (await connection.ReadFrameAsync(ct) is { } frame)
        {
            if (frame.Type == RawHttp2Connection.Settings && (frame.Flags & RawHttp2Connection.Ack) == 0)
            {
                return frame;
            }
        }

        return null;
    }

    private static async Task<TimeSpan> Closed(RawHttp2Connection connection, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        await connection.ReadUntilClosedAsync(ct);
        return clock.Elapsed;
    }

    private sealed record Answer(int? Status, string Message);

    private static void AssertStatus(int expected, Answer answer) =>
        Assert.True(answer.Status == expected, $"expected gRPC status {expected}, got {answer.Status?.ToString(CultureInfo.InvariantCulture) ?? "none"}: {answer.Message}");

    private static HttpClient Http2Client() => new(new SocketsHttpHandler { EnableMultipleHttp2Connections = true })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>
    /// One gRPC call as bytes: its status (null when the server cut the stream or connection without
    /// one, which for these probes counts as refused) and message.
    /// </summary>
    private async Task<Answer> CallAsync(HttpClient client, string path, HttpContent body, string? secret, string? encoding = null)
    {
        body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(serve.Address, path))
        {
            Content = body,
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        if (secret is not null)
        {
            request.Headers.TryAddWithoutValidation("x-distclip-secret", secret);
        }

        if (encoding is not null)
        {
            request.Headers.TryAddWithoutValidation("grpc-encoding", encoding);
        }

        // A call the server holds open fails the test at this deadline instead of hanging it.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            if (response.Headers.TryGetValues("grpc-status", out var early))
            {
                return new Answer(int.Parse(early.Single(), CultureInfo.InvariantCulture), Message(response.Headers));
            }

            await response.Content.ReadAsByteArrayAsync(deadline.Token);
            return response.TrailingHeaders.TryGetValues("grpc-status", out var late)
                ? new Answer(int.Parse(late.Single(), CultureInfo.InvariantCulture), Message(response.TrailingHeaders))
                : new Answer(null, $"no grpc-status: HTTP {(int)response.StatusCode} {response.Version} {string.Join("; ", response.Headers.Select(h => h.Key))} | {string.Join("; ", response.TrailingHeaders.Select(h => h.Key))}");
        }
        catch (HttpRequestException e)
        {
            return new Answer(null, e.Message);
        }
        catch (IOException e)
        {
            return new Answer(null, e.Message);
        }
    }

    private static string Message(System.Net.Http.Headers.HttpHeaders headers) =>
        headers.TryGetValues("grpc-message", out var message) ? Uri.UnescapeDataString(message.Single()) : "";

    /// <summary>A gRPC length-prefixed message around <paramref name="payload"/>.</summary>
    private static byte[] Message(byte[] payload, bool compressed = false)
    {
        var message = new byte[5 + payload.Length];
        message[0] = compressed ? (byte)1 : (byte)0;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), payload.Length);
        payload.CopyTo(message, 5);
        return message;
    }

    /// <summary>Sends its bytes one at a time, two a second: the slow-body attack.</summary>
    private sealed class TrickleContent(byte[] bytes) : HttpContent
    {
        private int _sent;

        public int Sent => Volatile.Read(ref _sent);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            foreach (byte b in bytes)
            {
                await stream.WriteAsync(new[] { b });
                await stream.FlushAsync();
                Interlocked.Increment(ref _sent);
                await Task.Delay(TimeSpan.FromMilliseconds(500)); // the attacker's pace, not a wait for an event
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = bytes.Length;
            return true;
        }
    }

    private static int OpenFds(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    private static long RssBytes(int pid)
    {
        var match = Regex.Match(File.ReadAllText($"/proc/{pid}/status"), @"VmRSS:\s+(\d+) kB");
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) * 1024;
    }
}

using System.Diagnostics;
using System.Net.Sockets;
using DistClip.Collectives.Grpc;
using DistClip.Collectives.Grpc.Http2;
using DistClip.Logging;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using static DistClip.Collectives.Tests.RawHttp2;

namespace DistClip.Collectives.Tests;

/// <summary>What strangers can make the direct listener log, and what a failing accept costs.</summary>
public sealed class Http2ListenerLimitsTests
{
    private const int RefusedLinkEvent = 103;
    private const int SuppressedEvent = 106;
    private const int AcceptFailedEvent = 108;

    [Fact]
    public void The_rate_limiter_lets_N_lines_through_per_interval_and_counts_the_rest()
    {
        var time = new FakeTimeProvider();
        var limiter = new LogRateLimiter(10, TimeSpan.FromSeconds(10), time);

        int logged = Enumerable.Range(0, 10_000).Count(_ => limiter.TryLog(out long _));
        time.Advance(TimeSpan.FromSeconds(10));
        bool next = limiter.TryLog(out long suppressed);

        Assert.Equal(10, logged);
        Assert.True(next);
        Assert.Equal(9_990, suppressed);
    }

    [Fact]
    public async Task Ten_thousand_refused_connections_write_ten_lines_and_then_one_summary()
    {
        var time = new FakeTimeProvider(); // stands still, so every refusal falls into one interval
        using var logs = new ListLoggerProvider();
        var logger = logs.CreateLogger("test");
        var options = Options() with { MaxUnauthenticatedConnections = 32 };
        await using var listener = Http2LinkListener.Start(options, Acceptor(time, logger), time, logger);
        byte[] wrong = ClientHandshake("wrong");

        async Task<bool> RefusedAsync()
        {
            using var socket = await ConnectAsync(listener.LocalEndPoint);
            await TrySendAsync(socket, wrong);
            var (received, closed) = await ReadUntilClosedAsync(socket, Patience);
            return closed && System.Text.Encoding.ASCII.GetString(received).Contains("presented a wrong or missing secret", StringComparison.Ordinal);
        }

        int refused = 0;
        for (int batch = 0; batch < 10_000 / 16; batch++)
        {
            refused += (await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => RefusedAsync()))).Count(r => r);
        }

        int linesBefore = logs.Lines.Count;
        time.Advance(GrpcLog.LimitInterval);
        Assert.True(await RefusedAsync());

        var lines = logs.Lines.ToArray();
        Assert.Equal(10_000, refused);
        Assert.Equal(10, linesBefore);
        Assert.Equal(10 + 1, lines.Count(l => l.Id.Id == RefusedLinkEvent));
        var summary = Assert.Single(lines, l => l.Id.Id == SuppressedEvent);
        Assert.StartsWith("9990 more log lines", summary.Message);
    }

    [Theory]
    [InlineData(1, 10)]
    [InlineData(2, 20)]
    [InlineData(7, 640)]
    [InlineData(8, 1000)]
    [InlineData(1000, 1000)]
    public void The_accept_backoff_doubles_from_10_ms_to_at_most_1_s(int failures, int milliseconds) =>
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), Http2LinkListener.AcceptBackoff(failures));

    [Fact]
    public async Task A_failing_accept_backs_off_instead_of_spinning_and_then_serves_a_real_connection()
    {
        const int Failures = 7; // 10 + 20 + ... + 640 ms of backoff
        using var logs = new ListLoggerProvider();
        var logger = logs.CreateLogger("test");
        var calls = new List<TimeSpan>();
        var clock = Stopwatch.StartNew();
        ValueTask<Socket> Accept(Socket listening, CancellationToken cancellationToken)
        {
            lock (calls)
            {
                calls.Add(clock.Elapsed);
                if (calls.Count <= Failures)
                {
                    // As accept(2) fails when the process is out of file descriptors: at once, every time.
                    throw new SocketException((int)SocketError.TooManyOpenSockets);
                }
            }

            return listening.AcceptAsync(cancellationToken);
        }

        await using var listener = Http2LinkListener.Start(Options(), Acceptor(logger: logger), logger: logger, accept: Accept);
        using var socket = await ConnectAsync(listener.LocalEndPoint);
        await TrySendAsync(socket, ClientHandshake("wrong"));
        var (received, closed) = await ReadUntilClosedAsync(socket, Patience);

        TimeSpan[] at;
        lock (calls)
        {
            at = [.. calls];
        }

        Assert.True(closed);
        Assert.Contains("presented a wrong or missing secret", System.Text.Encoding.ASCII.GetString(received));
        Assert.True(at.Length >= Failures + 1, $"accept was called {at.Length} times");
        for (int i = 1; i <= Failures; i++)
        {
            var gap = at[i] - at[i - 1];
            Assert.True(gap >= Http2LinkListener.AcceptBackoff(i) * 0.5, $"accept #{i + 1} came {gap} after #{i}, not after a backoff");
        }

        Assert.Equal(Failures, logs.Lines.Count(l => l.Id.Id == AcceptFailedEvent));
    }
}

/// <summary>The new limits refuse nonsense, naming the option.</summary>
public sealed class GrpcTransportLimitOptionsTests
{
    public static TheoryData<string, GrpcTransportOptions> BadOptions()
    {
        var good = new GrpcTransportOptions { Secret = "s" };
        return new TheoryData<string, GrpcTransportOptions>
        {
            { nameof(GrpcTransportOptions.HandshakeTimeout), good with { HandshakeTimeout = TimeSpan.Zero } },
            { nameof(GrpcTransportOptions.MaxUnauthenticatedConnections), good with { MaxUnauthenticatedConnections = 0 } },
            { nameof(GrpcTransportOptions.MaxUnauthenticatedConnections), good with { MaxUnauthenticatedConnections = 4097 } },
            { nameof(GrpcTransportOptions.MaxHandshakeControlFrames), good with { MaxHandshakeControlFrames = 0 } },
            { nameof(GrpcTransportOptions.MaxHandshakeControlFrames), good with { MaxHandshakeControlFrames = 1025 } },
            { nameof(GrpcTransportOptions.MaxHeaderBytes), good with { MaxHeaderBytes = 1023 } },
            { nameof(GrpcTransportOptions.MaxHeaderBytes), good with { MaxHeaderBytes = (1 << 20) + 1 } },
        };
    }

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void A_limit_out_of_range_is_refused_by_name(string option, GrpcTransportOptions options)
    {
        var error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Equal(option, error.ParamName);
    }

    [Fact]
    public void The_defaults_are_valid() => new GrpcTransportOptions { Secret = "s" }.Validate();
}

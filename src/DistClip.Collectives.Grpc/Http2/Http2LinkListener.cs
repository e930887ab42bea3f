using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// The collectives endpoint's h2c listener when <see cref="LinkServer.Http2Direct"/> is chosen: one
/// <see cref="Http2LinkConnection"/> per accepted connection, each serving one link call. What a
/// stranger can make it hold is bounded: at most <see cref="GrpcTransportOptions.MaxUnauthenticatedConnections"/>
/// connections before their secret is checked (more are closed at once), each for at most
/// <see cref="GrpcTransportOptions.HandshakeTimeout"/>; what it logs about them is rate-limited; and
/// a failing accept (out of file descriptors, say) is retried with a bounded backoff, not in a busy loop.
/// </summary>
internal sealed class Http2LinkListener : IAsyncDisposable
{
    /// <summary>The first and the longest wait after a failed accept; it doubles in between.</summary>
    public static readonly TimeSpan FirstAcceptBackoff = TimeSpan.FromMilliseconds(10);

    public static readonly TimeSpan MaxAcceptBackoff = TimeSpan.FromSeconds(1);

    private readonly Socket _socket;
    private readonly LinkAcceptor _acceptor;
    private readonly GrpcTransportOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<Socket, CancellationToken, ValueTask<Socket>> _accept;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Http2LinkConnection, Task> _connections = new();
    private readonly Task _acceptLoop;
    private int _unauthenticated;

    private Http2LinkListener(
        Socket socket, LinkAcceptor acceptor, GrpcTransportOptions options, TimeProvider time, ILogger logger,
        Func<Socket, CancellationToken, ValueTask<Socket>>? accept)
    {
        _socket = socket;
        _acceptor = acceptor;
        _options = options;
        _time = time;
        _logger = logger;
        _accept = accept ?? ((listening, cancellationToken) => listening.AcceptAsync(cancellationToken));
        _acceptLoop = AcceptLoopAsync();
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>Connections accepted and not yet admitted or closed (for tests).</summary>
    public int Unauthenticated => Volatile.Read(ref _unauthenticated);

    /// <param name="accept">Accepts one connection on the listening socket; tests inject failures here.</param>
    public static Http2LinkListener Start(
        GrpcTransportOptions options, LinkAcceptor acceptor, TimeProvider? time = null, ILogger? logger = null,
        Func<Socket, CancellationToken, ValueTask<Socket>>? accept = null)
    {
        var socket = new Socket(options.ListenAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (options.ListenAddress.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.Bind(new IPEndPoint(options.ListenAddress, options.Port));
            socket.Listen(128);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new Http2LinkListener(
            socket, acceptor, options, time ?? TimeProvider.System, logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, accept);
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        foreach (var connection in _connections.Keys)
        {
            connection.Abort();
        }

        await Task.WhenAll(_connections.Values).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stopping.Dispose();
    }

    /// <summary>The wait after <paramref name="failures"/> accepts in a row have failed: 10 ms doubling to at most 1 s.</summary>
    public static TimeSpan AcceptBackoff(int failures) =>
        TimeSpan.FromTicks(Math.Min(MaxAcceptBackoff.Ticks, FirstAcceptBackoff.Ticks << Math.Clamp(failures - 1, 0, 20)));

    private async Task AcceptLoopAsync()
    {
        int failures = 0;
        while (!_stopping.IsCancellationRequested)
        {
            Socket accepted;
            try
            {
                accepted = await _accept(_socket, _stopping.Token).ConfigureAwait(false);
                failures = 0;
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                // A connection reset before it was accepted, or no file descriptors left (EMFILE,
                // ENFILE): the latter fails again at once, so wait rather than spin.
                var delay = AcceptBackoff(++failures);
                _acceptor.Refusals.Limited(_logger, logger => GrpcLog.AcceptFailed(logger, ex.SocketErrorCode.ToString(), delay));
                try
                {
                    await Task.Delay(delay, _time, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            foreach (var (ended, _) in _connections.Where(c => c.Value.IsCompleted).ToArray())
            {
                _connections.TryRemove(ended, out _);
            }

            int waiting = Interlocked.Increment(ref _unauthenticated);
            if (waiting > _options.MaxUnauthenticatedConnections)
            {
                Interlocked.Decrement(ref _unauthenticated);
                string peer = accepted.RemoteEndPoint?.ToString() ?? "unknown";
                _acceptor.Refusals.Limited(_logger, logger => GrpcLog.TooManyUnauthenticated(logger, peer, waiting - 1));
                accepted.Dispose();
                continue;
            }

            accepted.NoDelay = true;
            var connection = new Http2LinkConnection(accepted, _options, _time, () => Interlocked.Decrement(ref _unauthenticated));
            _connections[connection] = Task.Run(() => connection.RunAsync(_acceptor, _stopping.Token));
        }
    }
}

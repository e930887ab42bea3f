using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// The collectives endpoint's h2c listener when <see cref="LinkServer.Http2Direct"/> is chosen: one
/// <see cref="Http2LinkConnection"/> per accepted connection, each serving one link call.
/// </summary>
internal sealed class Http2LinkListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly LinkAcceptor _acceptor;
    private readonly GrpcTransportOptions _options;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Http2LinkConnection, Task> _connections = new();
    private readonly Task _acceptLoop;

    private Http2LinkListener(Socket socket, LinkAcceptor acceptor, GrpcTransportOptions options)
    {
        _socket = socket;
        _acceptor = acceptor;
        _options = options;
        _acceptLoop = AcceptLoopAsync();
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public static Http2LinkListener Start(GrpcTransportOptions options, LinkAcceptor acceptor)
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

        return new Http2LinkListener(socket, acceptor, options);
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

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket accepted;
            try
            {
                accepted = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // e.g. a connection reset before it was accepted
            }

            accepted.NoDelay = true;
            foreach (var (ended, _) in _connections.Where(c => c.Value.IsCompleted).ToArray())
            {
                _connections.TryRemove(ended, out _);
            }

            var connection = new Http2LinkConnection(accepted, _options);
            _connections[connection] = Task.Run(() => connection.RunAsync(_acceptor, _stopping.Token));
        }
    }
}

using System.Net.Security;
using System.Net.Sockets;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// The bytes of one direct link connection: the socket itself (h2c), or an <see cref="SslStream"/>
/// over it once <see cref="AuthenticateAsServerAsync"/> or <see cref="AuthenticateAsClientAsync"/>
/// has run. Both link ends read and write through it, so the HTTP/2 code is the same either way;
/// the socket stays underneath for what TLS has no say in (closing, buffer sizes).
/// </summary>
internal sealed class LinkWire(Socket socket) : IDisposable
{
    private SslStream? _tls;

    public Socket Socket => socket;

    /// <summary>Whether TLS was negotiated (for logs and tests).</summary>
    public bool IsEncrypted => _tls is not null;

    /// <summary>
    /// The server's TLS handshake. The caller's deadline closes the socket, which ends it: it
    /// runs inside the connection's pre-authentication deadline, counted as unauthenticated.
    /// </summary>
    public async Task AuthenticateAsServerAsync(SslServerAuthenticationOptions options, CancellationToken cancellationToken)
    {
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        try
        {
            await tls.AuthenticateAsServerAsync(options, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        _tls = tls;
    }

    public async Task AuthenticateAsClientAsync(SslClientAuthenticationOptions options, CancellationToken cancellationToken)
    {
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        try
        {
            await tls.AuthenticateAsClientAsync(options, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        _tls = tls;
    }

    /// <summary>Receives at least one byte, or 0 when the peer closed.</summary>
    public ValueTask<int> ReceiveAsync(Memory<byte> destination, CancellationToken cancellationToken) =>
        _tls is { } tls ? tls.ReadAsync(destination, cancellationToken) : socket.ReceiveAsync(destination, SocketFlags.None, cancellationToken);

    /// <summary>Sends some of <paramref name="bytes"/> (all of them under TLS); how many.</summary>
    public async ValueTask<int> SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        if (_tls is { } tls)
        {
            await tls.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
            return bytes.Length;
        }

        return await socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends a few bytes only if the kernel takes them at once (a GOAWAY before closing): the socket
    /// is made non-blocking, so a peer that does not read cannot hold this call. Under TLS a
    /// record that does not fit is lost as plain bytes would be; the connection closes next anyway.
    /// </summary>
    public void TrySendNow(ReadOnlySpan<byte> bytes)
    {
        try
        {
            socket.Blocking = false;
            if (_tls is { } tls)
            {
                tls.Write(bytes);
            }
            else
            {
                socket.Send(bytes, SocketFlags.None, out _);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or InvalidOperationException or NotSupportedException)
        {
            // Gone already, or it would have waited.
        }
    }

    /// <summary>Ends this side's sending: TLS's close_notify first, then the TCP half-close.</summary>
    public async Task ShutdownSendAsync(CancellationToken cancellationToken)
    {
        if (_tls is { } tls)
        {
            await tls.ShutdownAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        socket.Shutdown(SocketShutdown.Send);
    }

    public void Dispose()
    {
        _tls?.Dispose();
        socket.Dispose();
    }
}

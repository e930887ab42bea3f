using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using DistClip.Collectives.Transport;
using Grpc.Core;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>
/// A gRPC client for exactly one bidirectional-streaming call over its own h2c connection (HTTP/2 with
/// prior knowledge, RFC 9113), written for bulk tensor frames. It speaks the same wire format as
/// Grpc.Net.Client to the same Kestrel service, but sends each chunk as one DATA frame as large as
/// the server's SETTINGS_MAX_FRAME_SIZE allows, straight from the caller's memory to the socket: no
/// copy in user space, two <c>send</c> calls per chunk. (.NET's HTTP/2 client splits every message
/// into 16 KiB frames and flushes at most 32 KiB at a time, which made the link CPU-bound here.)
/// Everything else a client must do is done: SETTINGS and their ACK, PING replies, flow control on
/// the connection and the stream, RST_STREAM and GOAWAY, and the response headers and trailers
/// decoded with HPACK into a gRPC status.
/// </summary>
internal sealed partial class Http2LinkCall : ILinkCall
{
    private const int StreamId = 1;
    private const int FrameHeaderLength = Http2Frames.HeaderLength;
    private const int DefaultFrameSize = Http2Frames.DefaultFrameSize;
    private const int ReceiveWindow = 1 << 20;

    private readonly Socket _socket;
    private readonly LinkWire _wire;
    private readonly string _peer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);  // one frame on the wire at a time
    private readonly SemaphoreSlim _sendLock = new(1, 1);   // one message at a time (owns _head)
    private readonly byte[] _prefix = new byte[128];                     // the message's bytes before its payload
    private readonly byte[] _head = new byte[FrameHeaderLength + 128];   // a DATA frame's header and its part of _prefix
    private readonly object _flow = new();
    private readonly TaskCompletionSource<Metadata> _headers = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly HpackDecoder _decoder;
    private readonly int _maxHeaderBlock;
    private long _connectionWindow = Http2Frames.DefaultWindow;
    private long _streamWindow = Http2Frames.DefaultWindow;
    private int _peerInitialWindow = Http2Frames.DefaultWindow;
    private int _maxFrameSize = DefaultFrameSize;
    private TaskCompletionSource? _windowOpened;
    private Exception? _failure;
    private int _closed;

    private Http2LinkCall(LinkWire wire, string peer, int maxHeaderBytes)
    {
        _socket = wire.Socket;
        _wire = wire;
        _peer = peer;
        _maxHeaderBlock = maxHeaderBytes;
        _decoder = new HpackDecoder(maxListBytes: maxHeaderBytes);
        // Nobody else awaits these when the caller gave up early; never leave a fault unobserved.
        _ = _headers.Task.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously);
        _ = _completion.Task.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously);
    }

    public Task<Metadata> ResponseHeadersAsync => _headers.Task;

    public Task Completion => _completion.Task;

    /// <summary>Connects and starts the call; a peer that cannot be reached is an <see cref="RpcException"/> with Unavailable.</summary>
    /// <param name="maxHeaderBytes">The largest response header block accepted, and its largest decoded size (<see cref="GrpcTransportOptions.MaxHeaderBytes"/>).</param>
    /// <param name="tls">The run's TLS material: the connection is TLS (h2, mutual) and the server must chain to the run's CA; null = h2c.</param>
    public static async Task<Http2LinkCall> StartAsync(
        Uri address, string path, IEnumerable<KeyValuePair<string, string>> metadata, CancellationToken cancellationToken,
        int maxHeaderBytes = 16 << 10, DistClip.Tls.RunTls? tls = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new DnsEndPoint(address.DnsSafeHost, address.Port), cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new RpcException(new Status(StatusCode.Unavailable, $"cannot connect to {address}: {ex.SocketErrorCode}", ex));
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var wire = new LinkWire(socket);
        if (tls is not null)
        {
            try
            {
                await wire.AuthenticateAsClientAsync(tls.ClientOptions(address.DnsSafeHost), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException or SocketException)
            {
                wire.Dispose();
                throw new RpcException(new Status(StatusCode.Unavailable, $"TLS with {address} failed: {ex.Message}", ex));
            }
            catch
            {
                wire.Dispose();
                throw;
            }
        }

        var call = new Http2LinkCall(wire, address.ToString(), maxHeaderBytes);
        _ = call.ReadLoopAsync();

        var start = new List<byte>(512);
        start.AddRange(Http2Frames.Preface);
        start.AddRange(Http2Frames.SettingsFrame((Http2Frames.SettingEnablePush, 0), (Http2Frames.SettingInitialWindowSize, ReceiveWindow)));

        var block = new List<byte>(256);
        HpackEncoder.WriteLiteral(block, ":method", "POST");
        HpackEncoder.WriteLiteral(block, ":scheme", tls is null ? "http" : "https");
        HpackEncoder.WriteLiteral(block, ":path", path);
        HpackEncoder.WriteLiteral(block, ":authority", address.Authority);
        HpackEncoder.WriteLiteral(block, "content-type", "application/grpc");
        HpackEncoder.WriteLiteral(block, "te", "trailers");
        foreach (var (name, value) in metadata)
        {
            HpackEncoder.WriteLiteral(block, name.ToLowerInvariant(), value);
        }

        if (block.Count > DefaultFrameSize)
        {
            call.Dispose();
            throw new ArgumentException($"The call's headers take {block.Count} bytes; at most {DefaultFrameSize} fit one HEADERS frame.");
        }

        start.AddRange(Http2Frames.Frame(Http2Frames.Headers, Http2Frames.EndHeadersFlag, StreamId, block.ToArray()));
        try
        {
            await call.WriteFrameAsync(start.ToArray(), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            // The peer hung up at once (the reader may have closed the socket already): say so as gRPC does.
            var failure = call.Failure(ex);
            call.Dispose();
            throw failure;
        }
        catch
        {
            call.Dispose();
            throw;
        }

        return call;
    }

    public async ValueTask WriteAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // The gRPC message: 5-byte prefix, then the CollectiveFrame (header field, payload tag and length, payload).
            int proto = FrameMarshaller.WritePrefix(header, payload.Length, _prefix.AsSpan(5), out int messageLength);
            _prefix[0] = 0; // not compressed
            BinaryPrimitives.WriteUInt32BigEndian(_prefix.AsSpan(1), (uint)messageLength);
            int prefixLength = 5 + proto;
            int total = 5 + messageLength;

            using var abortOnCancel = cancellationToken.CanBeCanceled ? cancellationToken.Register(static s => ((Http2LinkCall)s!).Cancel(), this) : default;
            int sent = 0;
            while (sent < total)
            {
                int n = await ReserveAsync(total - sent, cancellationToken).ConfigureAwait(false);
                await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    // Frame header, then whatever part of the message prefix this frame covers, in one buffer.
                    int prefixPart = Math.Max(0, Math.Min(prefixLength, sent + n) - sent);
                    _prefix.AsSpan(Math.Min(sent, prefixLength), prefixPart).CopyTo(_head.AsSpan(FrameHeaderLength));
                    Http2Frames.WriteHeader(_head, n, Http2Frames.Data, 0, StreamId);
                    await SendAllAsync(_head.AsMemory(0, FrameHeaderLength + prefixPart)).ConfigureAwait(false);
                    int payloadStart = Math.Max(0, sent - prefixLength);
                    int payloadPart = n - prefixPart;
                    if (payloadPart > 0)
                    {
                        await SendAllAsync(payload.Slice(payloadStart, payloadPart)).ConfigureAwait(false);
                    }
                }
                finally
                {
                    _writeLock.Release();
                }

                sent += n;
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw Failure(ex);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    public async Task CompleteRequestAsync()
    {
        var frame = new byte[FrameHeaderLength];
        Http2Frames.WriteHeader(frame, 0, Http2Frames.Data, Http2Frames.EndStreamFlag, StreamId);
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await WriteFrameAsync(frame, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            throw Failure(ex);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <remarks>
    /// No RST_STREAM: a blocking write could wait on a peer that stopped reading. Closing the
    /// connection tells the server just as surely (the stream ends without END_STREAM).
    /// </remarks>
    public void Cancel()
    {
        Fail(new RpcException(new Status(StatusCode.Cancelled, "The call was cancelled by this side.")));
        Close();
    }

    public void Dispose()
    {
        Fail(new RpcException(new Status(StatusCode.Cancelled, "The call was disposed.")));
        Close();
    }

    private void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            try
            {
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Not connected any more.
            }

            _wire.Dispose();
        }
    }

    private async ValueTask<int> ReserveAsync(int wanted, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task opened;
            lock (_flow)
            {
                if (_failure is { } failure)
                {
                    throw failure;
                }

                long available = Math.Min(_connectionWindow, _streamWindow);
                if (available > 0)
                {
                    int n = (int)Math.Min(Math.Min(available, wanted), _maxFrameSize);
                    _connectionWindow -= n;
                    _streamWindow -= n;
                    return n;
                }

                _windowOpened ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                opened = _windowOpened.Task;
            }

            await opened.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task WriteFrameAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await SendAllAsync(bytes).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int n = await _wire.SendAsync(bytes, CancellationToken.None).ConfigureAwait(false);
            bytes = bytes[n..];
        }
    }

    /// <summary>Records the first failure and wakes everything waiting on the call; later ones are dropped.</summary>
    private void Fail(Exception failure)
    {
        TaskCompletionSource? opened;
        lock (_flow)
        {
            _failure ??= failure;
            opened = _windowOpened;
            _windowOpened = null;
        }

        var first = _failure;
        _headers.TrySetException(first);
        _completion.TrySetException(first);
        opened?.TrySetException(first);
    }

    private Exception Failure(Exception cause) =>
        _failure is RpcException { StatusCode: not StatusCode.OK } known
            ? known
            : new RpcException(new Status(StatusCode.Unavailable, $"writing to {_peer} failed: {cause.Message}", cause));
}

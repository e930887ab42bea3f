using System.Buffers.Binary;
using System.Net.Sockets;

namespace DistClip.Collectives.Grpc.Http2;

/// <summary>The connection's control frames (checked, answered, or turned into its error) and its writes.</summary>
internal sealed partial class Http2LinkConnection
{
    /// <summary>SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE, PRIORITY; unknown types are ignored (RFC 9113 §4.1).</summary>
    private async ValueTask OnControlFrameAsync(byte type, byte flags, int stream, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        int length = payload.Length;
        switch (type)
        {
            case Http2Frames.Settings:
                Expect(stream == 0, "SETTINGS", length);
                if ((flags & Http2Frames.AckFlag) != 0)
                {
                    Expect(length == 0, "SETTINGS ACK", length);
                    break;
                }

                // This side sends no DATA, so the client's windows and frame size never matter; they
                // are checked all the same, since a peer that breaks these rules is not a gRPC client.
                Http2Frames.ReadSettings(payload.Span, OnSetting);
                await WriteAsync(Http2Frames.Frame(Http2Frames.Settings, Http2Frames.AckFlag, 0, default), cancellationToken).ConfigureAwait(false);
                break;
            case Http2Frames.Ping:
                Expect(length == 8 && stream == 0, "PING", length);
                if ((flags & Http2Frames.AckFlag) == 0)
                {
                    await WriteAsync(Http2Frames.Frame(Http2Frames.Ping, Http2Frames.AckFlag, 0, payload.Span), cancellationToken).ConfigureAwait(false);
                }

                break;
            case Http2Frames.WindowUpdate:
                uint increment = Http2Frames.ReadWindowIncrement(payload.Span);
                if (stream == 0)
                {
                    _sendConnectionWindow = Http2Frames.Grow(_sendConnectionWindow, increment, "connection");
                }
                else if (stream == _streamId)
                {
                    _sendStreamWindow = Http2Frames.Grow(_sendStreamWindow, increment, "stream");
                }

                break;
            case Http2Frames.Priority:
                Expect(length == 5 && stream != 0, "PRIORITY", length);
                break;
            case Http2Frames.RstStream:
                Expect(length == 4 && stream != 0, "RST_STREAM", length);
                if (stream == _streamId)
                {
                    throw new IOException($"{Peer} reset the stream (HTTP/2 error {BinaryPrimitives.ReadUInt32BigEndian(payload.Span)}).");
                }

                break;
            case Http2Frames.GoAway:
                Expect(length >= 8 && stream == 0, "GOAWAY", length);
                uint code = BinaryPrimitives.ReadUInt32BigEndian(payload.Span[4..]);
                if (code != Http2Frames.NoError)
                {
                    throw new IOException($"{Peer} closed the connection (GOAWAY, HTTP/2 error {code}).");
                }

                break;
            case Http2Frames.Headers or Http2Frames.Continuation:
                // SETTINGS_MAX_CONCURRENT_STREAMS is 1: a second call on this connection is a protocol error.
                throw new Http2ConnectionException(Http2Frames.ProtocolError, $"{Peer} opened a second stream ({stream}) on a link connection.");
            case Http2Frames.Data:
                throw new Http2ConnectionException(Http2Frames.ProtocolError, $"{Peer} sent DATA on stream {stream}, which is not open.");
            case Http2Frames.PushPromise:
                throw new Http2ConnectionException(Http2Frames.ProtocolError, "A client sent PUSH_PROMISE.");
        }
    }

    private void OnSetting(ushort id, uint value)
    {
        if (id == Http2Frames.SettingInitialWindowSize)
        {
            // RFC 9113 §6.9.2: the change applies to the open stream's window, which may not overflow.
            _sendStreamWindow = Http2Frames.Grow(_sendStreamWindow, value - _peerInitialWindow, "stream");
            _peerInitialWindow = value;
        }
    }

    private static void Expect(bool valid, string frame, int length)
    {
        if (!valid)
        {
            throw new Http2ConnectionException(Http2Frames.FrameSizeError, $"A malformed {frame} frame ({length} bytes).");
        }
    }

    /// <summary>A GOAWAY naming the error, only if the socket takes it without waiting (a writer may hold it, or the peer not read).</summary>
    private void TrySendGoAway(uint code)
    {
        if (!_writeLock.Wait(0))
        {
            return;
        }

        try
        {
            _wire.TrySendNow(Http2Frames.ErrorFrame(Http2Frames.GoAway, 0, code, _streamId));
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Writes whole frames, one writer at a time. A write the token cancels while the socket holds
    /// it (a peer that stopped reading) may have left half a frame on the wire, so the connection
    /// is aborted: nothing sensible can follow it.
    /// </summary>
    private async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (!bytes.IsEmpty)
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    int n = await _wire.SendAsync(bytes, cancellationToken).ConfigureAwait(false);
                    bytes = bytes[n..];
                }
                catch (OperationCanceledException)
                {
                    Abort();
                    throw;
                }
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }
}

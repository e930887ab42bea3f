namespace DistClip.Logging;

/// <summary>
/// Lets at most <c>lines</c> log lines through per <c>interval</c>, and counts the rest, so that a
/// stranger who makes this side refuse 10,000 connections costs 10,000 counter increments, not
/// 10,000 lines. The first line let through in a new interval carries how many were suppressed
/// before it (logging it is the caller's part). Thread-safe. Compiled into each program that needs it
/// (src/Shared/Logging): the data plane's refusals and the coordinator's token refusals.
/// </summary>
internal sealed class LogRateLimiter
{
    private readonly int _lines;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private DateTimeOffset _windowStart = DateTimeOffset.MinValue;
    private int _inWindow;
    private long _suppressed;

    public LogRateLimiter(int lines, TimeSpan interval, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(lines, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        _lines = lines;
        _interval = interval;
        _time = time;
    }

    /// <summary>Whether this line may be logged; if so, <paramref name="suppressed"/> says how many were dropped since the last one logged.</summary>
    public bool TryLog(out long suppressed)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            if (now - _windowStart >= _interval)
            {
                _windowStart = now;
                _inWindow = 0;
            }

            if (_inWindow < _lines)
            {
                _inWindow++;
                suppressed = _suppressed;
                _suppressed = 0;
                return true;
            }

            _suppressed++;
            suppressed = 0;
            return false;
        }
    }
}

using Microsoft.Extensions.Logging;

namespace DistClip.Data;

/// <summary>
/// Thread-safe per-reason counts of skipped samples. Each reason also logs a warning with its running
/// count, at most once per <see cref="LogInterval"/> so a shard full of broken images cannot flood the log.
/// The first skip of each reason is always logged.
/// </summary>
public sealed partial class SkipCounters
{
    /// <summary>The shortest gap between two log lines for the same reason.</summary>
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(5);

    private static readonly SkipReason[] Reasons = Enum.GetValues<SkipReason>();

    private readonly long[] _counts = new long[Reasons.Length];

    // Timestamp of the last log line per reason; long.MinValue means "never logged".
    private readonly long[] _lastLogged = new long[Reasons.Length];
    private readonly ILogger? _logger;
    private readonly TimeProvider _time;

    public SkipCounters(ILogger? logger = null, TimeProvider? time = null)
    {
        _logger = logger;
        _time = time ?? TimeProvider.System;
        Array.Fill(_lastLogged, long.MinValue);
        DataMetrics.Announce();
    }

    /// <summary>All skips so far, over every reason.</summary>
    public long Total
    {
        get
        {
            long total = 0;
            for (int i = 0; i < _counts.Length; i++)
            {
                total += Interlocked.Read(ref _counts[i]);
            }

            return total;
        }
    }

    /// <summary>Counts one skipped sample.</summary>
    /// <param name="what">The sample's key or path, for the log line.</param>
    public void Record(SkipReason reason, string what)
    {
        int slot = Slot(reason);
        long count = Interlocked.Increment(ref _counts[slot]);
        DataMetrics.RecordSkip(reason);
        if (_logger is null || !_logger.IsEnabled(LogLevel.Warning))
        {
            return;
        }

        long now = _time.GetTimestamp();
        long last = Interlocked.Read(ref _lastLogged[slot]);
        bool due = last == long.MinValue || _time.GetElapsedTime(last, now) >= LogInterval;

        // Only the thread that wins the exchange logs, so concurrent skips produce one line.
        if (due && Interlocked.CompareExchange(ref _lastLogged[slot], now, last) == last)
        {
            LogSkipped(_logger, reason, count, what);
        }
    }

    public long Get(SkipReason reason) => Interlocked.Read(ref _counts[Slot(reason)]);

    /// <summary>A copy of every reason's count (zeros included).</summary>
    public IReadOnlyDictionary<SkipReason, long> Snapshot()
    {
        var snapshot = new Dictionary<SkipReason, long>(Reasons.Length);
        foreach (SkipReason reason in Reasons)
        {
            snapshot[reason] = Get(reason);
        }

        return snapshot;
    }

    public override string ToString() =>
        string.Join(", ", Snapshot().Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}"));

    private static int Slot(SkipReason reason)
    {
        int slot = (int)reason;
        if ((uint)slot >= (uint)Reasons.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(reason), reason, "Unknown skip reason.");
        }

        return slot;
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning,
        Message = "Skipped sample {What}: {Reason} ({Count} skipped for this reason so far)")]
    private static partial void LogSkipped(ILogger logger, SkipReason reason, long count, string what);
}

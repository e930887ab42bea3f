using Microsoft.Extensions.Logging;

namespace DistClip.Coordinator.Runs;

/// <summary>What the run's membership looks like at one moment, for metrics.</summary>
/// <param name="Generation">The current generation (0 before the first forms).</param>
/// <param name="Restarts">Lost workers so far.</param>
/// <param name="WorldSize">Workers the run needs.</param>
/// <param name="WorkersUp">Workers in touch: members of the current generation plus those waiting to join the next.</param>
/// <param name="HeartbeatAgeSeconds">Seconds since each member's last heartbeat, by rank; empty while a generation forms.</param>
internal sealed record RunHealth(long Generation, int Restarts, int WorldSize, int WorkersUp, IReadOnlyList<double> HeartbeatAgeSeconds);

public sealed partial class Membership
{
    /// <summary>The run's logger, for the parts of the coordinator that report on it (the targets file).</summary>
    internal ILogger Logger => _logger;

    internal RunHealth Health() => Locked(() =>
    {
        var now = _time.GetUtcNow();
        return new RunHealth(_generation, _restarts, _settings.WorldSize, _members.Length + _joining.Count,
            [.. _members.Select(m => Math.Max(0, (now - m.LastSeen).TotalSeconds))]);
    });
}

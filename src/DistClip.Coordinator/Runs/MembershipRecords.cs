using DistClip.Config;

namespace DistClip.Coordinator.Runs;

// What the membership speaks in. The gRPC service (Services/RunControlService.cs) maps the control
// protocol's messages to and from these; nothing in Runs/ knows the protocol.

/// <summary>Where a run's membership stands.</summary>
public enum MembershipState
{
    /// <summary>Workers are joining; a generation forms once every rank is present.</summary>
    Forming,

    /// <summary>A generation trains; its members beat, and losing one aborts it.</summary>
    Running,

    /// <summary>The outcome is decided; some workers of the last generation have not heard yet.</summary>
    Ending,

    /// <summary>The outcome is decided and every worker of the last generation has been told.</summary>
    Ended,
}

/// <summary>A worker process as it introduced itself when it joined.</summary>
/// <param name="WorkerId">Unique per worker process.</param>
/// <param name="Host">The host name the worker reports.</param>
/// <param name="Pid">Its process id on that host.</param>
/// <param name="CollectiveEndpoint">Where its ring neighbour reaches it.</param>
/// <param name="PreferredRank">The rank it asks for (a launcher slot, a Kubernetes index); -1 for any.</param>
/// <param name="HeldStep">
/// The steps of the replica state it kept from an aborted generation of this run, or -1 for none
/// (docs/architecture.md, "Recovery from live peers").
/// </param>
public sealed record WorkerIdentity(string WorkerId, string Host, int Pid, string CollectiveEndpoint, int PreferredRank = -1, long HeldStep = -1);

/// <summary>
/// One generation: its number, its members by rank, and where its state comes from: the replica
/// state of rank <paramref name="StateSource"/> (a survivor that completed <paramref name="StateStep"/>
/// steps; -1: none), else the checkpoint <paramref name="ResumeFrom"/>, else (null) the seed.
/// </summary>
public sealed record GenerationPlan(long Generation, IReadOnlyList<WorkerIdentity> Ranks, string? ResumeFrom, int StateSource = -1, long StateStep = -1)
{
    public int WorldSize => Ranks.Count;
}

/// <summary>The answer to a join: a seat in a generation, or the news that the run is over.</summary>
public abstract record JoinReply;

/// <summary>The worker has rank <paramref name="Rank"/> of <paramref name="Plan"/>.</summary>
public sealed record Seated(GenerationPlan Plan, int Rank) : JoinReply;

/// <summary>The run is over: the worker exits.</summary>
public sealed record RunOver : JoinReply
{
    public static readonly RunOver Instance = new();
}

/// <summary>One heartbeat of a member.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="Phase">What the member says it is doing, lower case (e.g. "forward", "exchange"): for messages and the progress watchdog.</param>
public sealed record MemberBeat(string WorkerId, long Generation, long Step, string Phase);

public enum MemberCommandKind
{
    /// <summary>Abandon the generation at once and join again.</summary>
    Abort,

    /// <summary>The run is over: exit.</summary>
    Stop,
}

/// <summary>What the coordinator tells a member on its heartbeat stream.</summary>
public sealed record MemberCommand(MemberCommandKind Kind, long Generation, string Reason);

/// <summary>A rank finished its last step; rank 0's report carries the run's summary (JSON).</summary>
public sealed record FinishReport(long Generation, int Rank, string ParametersSha256, string? SummaryJson, long PeakRssBytes)
{
    /// <summary>The rank's mean seconds per phase, as it reported them (filtered by <see cref="KnownPhases"/>).</summary>
    public IReadOnlyDictionary<string, double> PhaseSeconds { get; init; } = new Dictionary<string, double>();

    /// <summary>
    /// What of a reported phase table is kept: the summary's phase names only, each with a finite,
    /// non-negative value. The table arrives over the network; anything else is dropped, so that a
    /// worker cannot grow the summary or put names in it.
    /// </summary>
    public static Dictionary<string, double> KnownPhases(IEnumerable<KeyValuePair<string, double>> reported) => Known(reported, RunSummary.PhaseNames);

    /// <summary>The rank's mean seconds per step of exposed communication and peer wait (filtered as <see cref="PhaseSeconds"/> is, by <see cref="RunSummary.WaitNames"/>).</summary>
    public IReadOnlyDictionary<string, double> WaitSeconds { get; init; } = new Dictionary<string, double>();

    /// <summary>What of a reported table is kept: <paramref name="names"/> only, each with a finite, non-negative value.</summary>
    public static Dictionary<string, double> Known(IEnumerable<KeyValuePair<string, double>> reported, IReadOnlyCollection<string> names) =>
        reported.Where(p => names.Contains(p.Key, StringComparer.Ordinal) && double.IsFinite(p.Value) && p.Value >= 0)
            .ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
}

/// <summary>A training step rank 0 reports.</summary>
public sealed record ProgressReport(long Generation, long Step, long TotalSteps, double Loss, double LearningRate, double LogitScale, int Samples);

/// <summary>A checkpoint rank 0 committed to shared storage.</summary>
public sealed record CheckpointReport(long Generation, long Step, string Directory);

/// <summary>A member the membership declared lost. Its process may still be there (stopped, or stuck): the launcher that started it kills it.</summary>
/// <param name="Why">What the membership said about the loss.</param>
/// <param name="Loss">How many members the run has lost, this one included: a launcher kills only a process it started before that loss.</param>
public sealed record LostMember(WorkerIdentity Worker, string Why, long Loss);

/// <summary>What a worker's reported failure means for the run.</summary>
public enum FailureKind
{
    /// <summary>An error a restart may cure; the worker exits and is replaced.</summary>
    Error,

    /// <summary>An error a restart cannot cure: the run ends.</summary>
    Fatal,

    /// <summary>A collective of the reporter timed out waiting on a peer: the rank holding it up is to blame, not the reporter.</summary>
    CollectiveTimeout,
}

/// <summary>A worker's generation failed with an exception (not an abort).</summary>
/// <param name="Step">Steps done when it failed.</param>
/// <param name="Phase">The phase it failed in, as heartbeats name it.</param>
public sealed record FailureReport(
    string WorkerId, long Generation, int Rank, long Step, string Phase, FailureKind Kind, string ExceptionType, string Message)
{
    /// <summary>The most of a message the coordinator keeps (the worker sends no more either).</summary>
    public const int MaxMessageLength = 4096;

    /// <summary>The exception as one line of the coordinator's output: its type and message.</summary>
    public string Cause => $"{ExceptionType}: {(Message.Length > MaxMessageLength ? Message[..MaxMessageLength] + "…" : Message)}";
}

using System.Threading.Channels;

namespace DistClip.Coordinator.Runs;

/// <summary>What the membership keeps of a worker waiting to join and of a member of the current generation.</summary>
public sealed partial class Membership
{
    /// <summary>
    /// The rank of worker <paramref name="workerId"/> in <paramref name="generation"/> while that is
    /// the current generation; null otherwise (the calls of a worker that is no member change nothing).
    /// </summary>
    public int? RankOf(string workerId, long generation) => Locked<int?>(() =>
    {
        var member = Find(workerId, generation);
        return member is null ? null : Array.IndexOf(_members, member);
    });

    private sealed class Joiner(WorkerIdentity worker, int order)
    {
        public WorkerIdentity Worker { get; } = worker;
        public int Order { get; } = order;
        public TaskCompletionSource<JoinReply> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Member(WorkerIdentity worker, DateTimeOffset formedAt)
    {
        public WorkerIdentity Worker { get; } = worker;
        public Channel<MemberCommand> Commands { get; } = Channel.CreateUnbounded<MemberCommand>();
        public DateTimeOffset LastSeen { get; private set; } = formedAt;

        /// <summary>When its (step, phase) last changed: what the progress watchdog reads.</summary>
        public DateTimeOffset ProgressAt { get; private set; } = formedAt;
        public long Step { get; private set; }
        public string Phase { get; private set; } = "joining";
        public bool Finished { get; set; }
        public string? ParametersHash { get; set; }
        public string? SummaryJson { get; set; }
        public long PeakRssBytes { get; set; }
        public IReadOnlyDictionary<string, double> PhaseSeconds { get; set; } = new Dictionary<string, double>();
        public IReadOnlyDictionary<string, double> WaitSeconds { get; set; } = new Dictionary<string, double>();

        public void Beat(MemberBeat beat, DateTimeOffset now)
        {
            LastSeen = now;
            At(beat.Step, beat.Phase, now);
        }

        /// <summary>Where it is, from a heartbeat or a failure report.</summary>
        public void At(long step, string phase, DateTimeOffset now)
        {
            if (step != Step || phase != Phase)
            {
                ProgressAt = now;
            }

            Step = step;
            Phase = phase;
        }
    }
}

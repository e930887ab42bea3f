using DistClip.Collectives;
using DistClip.Config;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Tests;

/// <summary>
/// A replica's kept state (docs/architecture.md, "Recovery from live peers"): sealed bytes that
/// refuse damage, and a session cut off mid-step that hands over a state from which training goes
/// on bit for bit as if it had never stopped.
/// </summary>
public sealed class ReplicaStateTests
{
    private static readonly TrainOptions Options = new()
    {
        Model = "clip-micro",
        Steps = 4,
        GlobalBatch = 32,
        Seed = 5,
        RetrievalSamples = 0,
        EvalSamples = 100,
    };

    [Fact]
    public void A_step_cut_off_in_its_all_reduce_changes_nothing_of_the_kept_state_and_training_resumes_bit_identical()
    {
        string expectedParameters, expectedOrder;
        using (var whole = new TrainingSession(Options, SingleProcessCollectives.Instance, NullLogger.Instance))
        {
            whole.Train(null, CancellationToken.None);
            expectedParameters = whole.ParametersSha256();
            expectedOrder = whole.Summarize(0).DataOrderSha256!;
        }

        // The third step's gradient all-reduce fails (a peer died): steps 1-2 stand, step 3 never applied.
        ReplicaState kept;
        using (var cut = new TrainingSession(Options, new FailingReduce(failAtCall: 3), NullLogger.Instance))
        {
            Assert.Throws<PeerFailedException>(() => cut.Train(null, CancellationToken.None));
            Assert.Equal(2, cut.StepsDone);
            kept = cut.CaptureReplicaState();
        }

        Assert.Equal(2, kept.Step);
        using var next = new TrainingSession(Options, SingleProcessCollectives.Instance, NullLogger.Instance);
        next.RestoreReplicaState(ReplicaState.Open([.. kept.Bytes]));
        Assert.Equal(2, next.StepsDone);
        next.Train(null, CancellationToken.None);

        Assert.Equal(expectedParameters, next.ParametersSha256());
        Assert.Equal(expectedOrder, next.Summarize(0).DataOrderSha256);
    }

    [Fact]
    public void Damaged_or_foreign_bytes_are_refused_naming_what_is_wrong()
    {
        var state = ReplicaState.Pack(7, "{}"u8, [1, 2, 3], [4, 5]);
        Assert.Equal(7, ReplicaState.Open([.. state.Bytes]).Step);

        byte[] flipped = [.. state.Bytes];
        flipped[45] ^= 1;
        Assert.Contains("SHA-256", Assert.Throws<InvalidDataException>(() => ReplicaState.Open(flipped)).Message);

        byte[] cut = state.Bytes[..^1];
        Assert.Contains("does not match", Assert.Throws<InvalidDataException>(() => ReplicaState.Open(cut)).Message);

        byte[] lying = [.. state.Bytes];
        BitConverter.TryWriteBytes(lying.AsSpan(24), long.MaxValue);
        Assert.Contains("section 1", Assert.Throws<InvalidDataException>(() => ReplicaState.Open(lying)).Message);

        Assert.Contains("not a replica state", Assert.Throws<InvalidDataException>(() => ReplicaState.Open("{\"json\": 1}"u8.ToArray())).Message);
        Assert.Throws<InvalidDataException>(() => ReplicaState.Open([]));
    }

    /// <summary>One process, whose gradient all-reduce fails at the given call as if its peer had died.</summary>
    private sealed class FailingReduce(int failAtCall) : IStepCollectives
    {
        private int _calls;

        public int Rank => 0;

        public int WorldSize => 1;

        public StepHeaders GatherRowCounts(long rows, long width, CollectiveWaits? previous, CancellationToken ct) =>
            SingleProcessCollectives.Instance.GatherRowCounts(rows, width, previous, ct);

        public Tensor AllGatherRows(Tensor local, IReadOnlyList<int> rows, CancellationToken ct) => local.detach();

        public Tensor ReduceScatterRows(Tensor full, IReadOnlyList<int> rows, CancellationToken ct) => full.detach();

        public Tensor ShiftRows(Tensor send, int receiveRows, CancellationToken ct) => send.detach();

        public void AllReduceSum(float[] values, CancellationToken ct)
        {
        }

        public IGradientReduction BeginGradientReduction(
            IReadOnlyList<IReadOnlyList<Parameter>> stages, IReadOnlyList<RowSparseGradient>? rowSparse, CancellationToken ct) =>
            new DeferredGradientReduction(stages, _ =>
            {
                if (++_calls == failAtCall)
                {
                    throw new PeerFailedException("the peer's link closed (test)", new PeerInfo(1, "http://127.0.0.1:1/"));
                }
            });
    }
}

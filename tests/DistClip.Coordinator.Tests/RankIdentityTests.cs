using System.Text.Json;
using DistClip.Config;
using DistClip.Control;
using DistClip.Control.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// Per-rank identity: a real <c>coordinator serve</c> and raw control-plane clients that hold the
/// run secret, playing both the workers and someone who has only the secret and another rank's
/// token. No worker process runs: the calls are what a worker would send.
/// </summary>
public sealed class RankIdentityTests : IDisposable
{
    private const string Secret = "rank-identity-test-secret";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-identity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_finish_for_rank_1_with_rank_0s_token_is_refused_and_the_run_ends_as_its_members_say()
    {
        await using var coordinator = StartServe("finish");
        var client = await ClientAsync(coordinator);
        var (a0, a1) = await JoinTwoAsync(client);
        Assert.Equal(a0.RankToken, a1.LeftRankToken); // rank 1's endpoint expects rank 0's link, and nothing else
        Assert.Equal(a1.RankToken, a0.LeftRankToken);
        Assert.NotEqual(a0.RankToken, a1.RankToken);

        // Counted, this would finish rank 1 with other parameters: rank 0's finish would then end the run as diverged.
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.FinishAsync(
            new WorkerFinished { Generation = 1, Rank = 1, ParametersSha256 = "forged", RankToken = a0.RankToken }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Equal("token does not match rank 1 generation 1", refused.Status.Detail);

        var result = await FinishBothAsync(client, coordinator, a0, a1);
        Assert.Contains("Refused finish: its token does not match rank 1 generation 1", result.Stdout + result.Stderr);
    }

    [Fact]
    public async Task A_heartbeat_with_a_token_of_an_earlier_generation_is_refused_and_the_member_stays()
    {
        await using var coordinator = StartServe("heartbeat");
        var client = await ClientAsync(coordinator);
        var (old0, old1) = await JoinTwoAsync(client);
        // Rank 1 fails (reported with its own token): generation 1 aborts and both join generation 2.
        await FailRank1Async(client, old1);
        var (new0, new1) = await JoinTwoAsync(client);
        Assert.Equal(2, new0.Generation);

        // Generation 1's token of rank 0, replayed for generation 2.
        await using (var replayed = Beat(client, "w0", new0, old0.RankToken))
        {
            var refused = await Assert.ThrowsAsync<RpcException>(replayed.NextAsync);
            Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
            Assert.Equal("token does not match rank 0 generation 2", refused.Status.Detail);
        }

        // The refused stream broke nothing (read as a broken stream, it would have lost rank 0 and
        // aborted generation 2, whose finishes would then count for nothing): the run ends as its
        // members say.
        var result = await FinishBothAsync(client, coordinator, new0, new1);
        Assert.Contains("Refused heartbeat: its token does not match rank 0 generation 2", result.Stdout + result.Stderr);
    }

    /// <summary>
    /// Probes 15a and 15c of issue #15: someone holding the run secret and rank 1's token (a member, or
    /// whoever took its token) tries to speak for rank 0: report it failed (losing it, so aborting the
    /// generation), report progress as it, and report a checkpoint (rank 0's call alone) naming a
    /// directory outside the run's checkpoints, which would be every rank's next resume. All are
    /// refused; the next generation resumes from the seed, not from that directory.
    /// </summary>
    [Fact]
    public async Task Rank_1_cannot_speak_for_rank_0_nor_point_the_next_resume_at_another_directory()
    {
        await using var coordinator = StartServe("claims");
        var client = await ClientAsync(coordinator);
        var (a0, a1) = await JoinTwoAsync(client);
        string elsewhere = Directory.CreateDirectory(Path.Combine(_dir, "elsewhere", "step-000000004")).FullName;

        foreach (ByteString token in new[] { a1.RankToken, ByteString.Empty })
        {
            var moved = await Assert.ThrowsAsync<RpcException>(() => client.ReportCheckpointAsync(
                new CheckpointCommitted { Generation = 1, Step = 4, Directory = elsewhere, RankToken = token }).ResponseAsync);
            Assert.Equal(StatusCode.PermissionDenied, moved.StatusCode);
            Assert.Equal("token does not match rank 0 generation 1", moved.Status.Detail);
        }

        // Rank 0 itself, with its own token, cannot make a directory outside the run's checkpoints the
        // next resume either: plainly, or through "..".
        string root = Path.Combine(_dir, "checkpoints");
        foreach (string directory in new[] { elsewhere, Path.Combine(root, "..", "elsewhere", "step-000000004"), root, "" })
        {
            var outside = await Assert.ThrowsAsync<RpcException>(() => client.ReportCheckpointAsync(
                new CheckpointCommitted { Generation = 1, Step = 4, Directory = directory, RankToken = a0.RankToken }).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, outside.StatusCode);
            Assert.Contains("not under the run's checkpoint directory", outside.Status.Detail);
        }

        // Rank 0 (worker w0) reported failed, whether the message names rank 0 or rank 1: the member lost would be w0.
        foreach (int named in new[] { 0, 1 })
        {
            var lost = await Assert.ThrowsAsync<RpcException>(() => client.ReportFailureAsync(new WorkerFailure
            {
                WorkerId = "w0",
                Generation = 1,
                Rank = named,
                Kind = WorkerFailure.Types.Kind.Fatal,
                ExceptionType = "IOException",
                Message = "forged by the test",
                RankToken = a1.RankToken,
            }).ResponseAsync);
            Assert.Equal(StatusCode.PermissionDenied, lost.StatusCode);
            Assert.Equal("token does not match rank 0 generation 1", lost.Status.Detail);
        }

        var progress = await Assert.ThrowsAsync<RpcException>(() => client.ReportProgressAsync(
            new Progress { Generation = 1, Step = 1, TotalSteps = 2, Loss = 1, RankToken = a1.RankToken }).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, progress.StatusCode);

        // Rank 1's own failure, with its own token, ends generation 1: generation 2 starts from the seed.
        await FailRank1Async(client, a1);
        var (b0, b1) = await JoinTwoAsync(client);
        Assert.Equal(2, b0.Generation);
        Assert.Equal("", b0.ResumeFrom);
        Assert.Equal("", b1.ResumeFrom);

        var result = await FinishBothAsync(client, coordinator, b0, b1);
        Assert.Contains("Refused checkpoint report: its token does not match rank 0 generation 1", result.Stdout + result.Stderr);
        Assert.DoesNotContain(elsewhere, result.Stdout + result.Stderr);
    }

    [Fact]
    public async Task Rank_0_can_record_only_this_runs_checkpoint_of_the_step_it_reports_and_never_an_older_one()
    {
        await using var coordinator = StartServe("steps");
        var client = await ClientAsync(coordinator);
        var (a0, a1) = await JoinTwoAsync(client);
        string root = Path.Combine(_dir, "checkpoints");
        string run = Path.Combine(root, "steps");
        string step4 = Directory.CreateDirectory(Path.Combine(run, "step-000000004")).FullName;
        string step2 = Directory.CreateDirectory(Path.Combine(run, "step-000000002")).FullName;
        string otherRun = Directory.CreateDirectory(Path.Combine(root, "other-run", "step-000000004")).FullName;

        // Under the root, but not this run's checkpoint of step 4: another run's, another step's, a
        // directory inside it; and no step at all.
        foreach (var (step, directory) in new[] { (4L, otherRun), (4L, step2), (4L, Path.Combine(step4, "model")), (0L, run) })
        {
            var wrong = await Assert.ThrowsAsync<RpcException>(() => client.ReportCheckpointAsync(
                new CheckpointCommitted { Generation = 1, Step = step, Directory = directory, RankToken = a0.RankToken }).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, wrong.StatusCode);
            Assert.Contains("is not this run's checkpoint of that step", wrong.Status.Detail);
        }

        // The genuine report is recorded; step 2's, genuine in form, would roll everyone back: refused.
        await client.ReportCheckpointAsync(new CheckpointCommitted { Generation = 1, Step = 4, Directory = step4 + "/", RankToken = a0.RankToken });
        var rollback = await Assert.ThrowsAsync<RpcException>(() => client.ReportCheckpointAsync(
            new CheckpointCommitted { Generation = 1, Step = 2, Directory = step2, RankToken = a0.RankToken }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, rollback.StatusCode);
        Assert.Contains("older than the latest one recorded", rollback.Status.Detail);

        // Generation 2 (no survivor holds a newer state) resumes from step 4, the one recorded.
        await FailRank1Async(client, a1);
        var (b0, b1) = await JoinTwoAsync(client);
        Assert.Equal(2, b0.Generation);
        Assert.Equal(step4, Path.TrimEndingDirectorySeparator(b0.ResumeFrom));
        Assert.Equal(step4, Path.TrimEndingDirectorySeparator(b1.ResumeFrom));

        await FinishBothAsync(client, coordinator, b0, b1);
    }

    /// <summary>Rank 1 (worker w1) reports its own failure, with its own token: its generation aborts.</summary>
    private static async Task FailRank1Async(RunControl.RunControlClient client, Assignment rank1) =>
        await client.ReportFailureAsync(new WorkerFailure
        {
            WorkerId = "w1",
            Generation = rank1.Generation,
            Rank = 1,
            Kind = WorkerFailure.Types.Kind.Error,
            ExceptionType = "IOException",
            Message = "injected by the test",
            RankToken = rank1.RankToken,
        });

    /// <summary>
    /// Both members finish as workers do, each with its own token: a heartbeat stream each, the
    /// finishes, the stop they hear, a clean close. The run succeeds and the coordinator exits 0.
    /// </summary>
    private async Task<CoordinatorProcess.Result> FinishBothAsync(
        RunControl.RunControlClient client, CoordinatorProcess coordinator, Assignment rank0, Assignment rank1)
    {
        long generation = rank0.Generation;
        await using var beat0 = Beat(client, "w0", rank0);
        await using var beat1 = Beat(client, "w1", rank1);
        string summary = new RunSummary { Model = "clip-micro", Dataset = "synthetic" }.ToJson();
        await client.FinishAsync(new WorkerFinished { Generation = generation, Rank = 0, ParametersSha256 = "same", SummaryJson = summary, RankToken = rank0.RankToken });
        await client.FinishAsync(new WorkerFinished { Generation = generation, Rank = 1, ParametersSha256 = "same", RankToken = rank1.RankToken });
        // Told at once, or on attaching: the ended generation's members keep their stop until they hear it.
        Assert.Equal((Command.Types.Kind.Stop, generation), Kind(await beat0.NextAsync()));
        Assert.Equal((Command.Types.Kind.Stop, generation), Kind(await beat1.NextAsync()));
        await beat0.CloseAsync();
        await beat1.CloseAsync();

        var result = await coordinator.WaitAsync(Deadline);
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        using var written = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, rank0.RunId, "summary.json"))); // run dir = _dir/run id
        Assert.Equal("same", written.RootElement.GetProperty("parameters_sha256").GetString());
        return result;
    }

    private static (Command.Types.Kind, long) Kind(Command command) => (command.Kind, command.Generation);

    [Fact]
    public void A_resume_directory_must_lie_under_the_checkpoint_root_without_links_on_the_way()
    {
        string root = Path.Combine(_dir, "checkpoints");
        string step = Path.Combine(root, "run", "step-000000004");
        Directory.CreateDirectory(step);
        string outside = Directory.CreateDirectory(Path.Combine(_dir, "elsewhere", "step-000000004")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(root, "linked"), Path.Combine(_dir, "elsewhere"));

        Assert.Equal(step, ResumeDirectory.EnsureUnder(step + "/", root));
        Assert.Equal(step, ResumeDirectory.EnsureUnder(Path.Combine(root, "other", "..", "run", "step-000000004"), root + "/"));

        var climbed = Assert.Throws<ConfigException>(() => ResumeDirectory.EnsureUnder(Path.Combine(root, "..", "elsewhere", "step-000000004"), root));
        Assert.Equal("resume", climbed.Field);
        Assert.Contains(outside, climbed.Message);
        Assert.Contains($"is not under the run's checkpoint directory {root}", climbed.Message);
        // A sibling whose name starts with the root's is not under it.
        var sibling = Assert.Throws<ConfigException>(() => ResumeDirectory.EnsureUnder(root + "-evil/run/step-000000004", root));
        Assert.Contains(root + "-evil", sibling.Message);
        Assert.Throws<ConfigException>(() => ResumeDirectory.EnsureUnder(root, root));
        var linked = Assert.Throws<ConfigException>(() => ResumeDirectory.EnsureUnder(Path.Combine(root, "linked", "step-000000004"), root));
        Assert.Contains($"passes through the symbolic link {Path.Combine(root, "linked")}", linked.Message);
    }

    [Fact]
    public void A_rank_token_is_bound_to_its_run_generation_rank_and_the_coordinators_salt()
    {
        var tokens = RankTokens.Derive(Secret, [1, 2, 3], "run-a");
        byte[] token = tokens.Of(3, 1);

        Assert.Equal(RankTokens.Length, token.Length);
        Assert.True(tokens.Matches(token, 3, 1));
        Assert.False(tokens.Matches(token, 3, 0));
        Assert.False(tokens.Matches(token, 4, 1));
        Assert.False(tokens.Matches(token.AsSpan(0, 16), 3, 1));
        Assert.False(RankTokens.Derive(Secret, [1, 2, 3], "run-b").Matches(token, 3, 1));
        // The secret alone (another salt: what anyone but this coordinator can derive) makes other tokens.
        Assert.False(RankTokens.Derive(Secret, [1, 2, 4], "run-a").Matches(token, 3, 1));
        Assert.True(RankTokens.Derive(Secret, [1, 2, 3], "run-a").Matches(token, 3, 1));
    }

    private CoordinatorProcess StartServe(string name) => CoordinatorProcess.Start(
        new Dictionary<string, string> { [RunSecret.EnvironmentVariable] = Secret },
        "serve", "--bind", "127.0.0.1", "--port", "0", "--workers", "2", "--model", "clip-micro", "--global-batch", "32",
        "--run-id", name, "--run-dir", Path.Combine(_dir, name), "--checkpoint-dir", Path.Combine(_dir, "checkpoints"),
        "--heartbeat-timeout", "60", "--max-restarts", "3");

    private static async Task<RunControl.RunControlClient> ClientAsync(CoordinatorProcess coordinator)
    {
        var listening = await coordinator.WaitForLineAsync(@"coordinator listening at (\S+);", Deadline);
        var channel = GrpcChannel.ForAddress(listening.Groups[1].Value);
        return new RunControl.RunControlClient(channel.Intercept(metadata =>
        {
            metadata.Add(RunSecret.Header, Secret);
            return metadata;
        }));
    }

    /// <summary>Workers w0 and w1 join, asking for ranks 0 and 1; returns once the generation formed.</summary>
    private static async Task<(Assignment Rank0, Assignment Rank1)> JoinTwoAsync(RunControl.RunControlClient client)
    {
        var joins = Enumerable.Range(0, 2).Select(r => client.JoinAsync(new JoinRequest
        {
            WorkerId = $"w{r}",
            Host = "test",
            Pid = Environment.ProcessId + r,
            PreferredRank = r,
            HeldStep = -1,
            CollectiveEndpoint = $"http://127.0.0.1:{40000 + r}/",
        }, deadline: DateTime.UtcNow + Deadline).ResponseAsync).ToArray();
        var assignments = await Task.WhenAll(joins);
        Assert.Equal([0, 1], assignments.Select(a => a.Rank));
        return (assignments[0], assignments[1]);
    }

    private static BeatStream Beat(RunControl.RunControlClient client, string workerId, Assignment assignment, ByteString? token = null) =>
        new(client.Heartbeat(deadline: DateTime.UtcNow + Deadline),
            new HeartbeatRequest { WorkerId = workerId, Generation = assignment.Generation, RankToken = token ?? assignment.RankToken });

    /// <summary>A heartbeat stream that sent one beat: the commands it hears, and a polite close.</summary>
    private sealed class BeatStream : IAsyncDisposable
    {
        private readonly AsyncDuplexStreamingCall<HeartbeatRequest, Command> _call;
        private readonly Task _sent;

        public BeatStream(AsyncDuplexStreamingCall<HeartbeatRequest, Command> call, HeartbeatRequest first)
        {
            _call = call;
            _sent = call.RequestStream.WriteAsync(first);
        }

        public async Task<Command> NextAsync()
        {
            await _sent;
            Assert.True(await _call.ResponseStream.MoveNext(CancellationToken.None), "the coordinator ended the stream without a command");
            return _call.ResponseStream.Current;
        }

        /// <summary>Closes this side and waits (within the call's deadline) for the coordinator to end its side.</summary>
        public async Task CloseAsync()
        {
            await _call.RequestStream.CompleteAsync();
            while (await _call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        }

        public ValueTask DisposeAsync()
        {
            _call.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

using DistClip.Checkpoints;
using DistClip.Config;
using DistClip.Training.Faults;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;

namespace DistClip.Training.Tests;

/// <summary>
/// A step whose global gradient norm or loss is not finite is skipped: no update, counted, and too
/// many in a row stop the run as diverged. No checkpoint is ever written from non-finite state.
/// </summary>
public sealed class NonFiniteStepTests : IDisposable
{
    private static readonly TrainOptions Options = new()
    {
        Dataset = "synthetic:512",
        Steps = 6,
        GlobalBatch = 16,
        EvalSamples = 32,
        RetrievalSamples = 0,
        LogEvery = 1,
    };

    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-nonfinite-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private FaultInjector Faults(string plan) => new(FaultPlan.Parse(plan), rank: 0, Path.Combine(_dir, "faults"));

    [Fact]
    public void A_NaN_gradient_at_step_3_leaves_weights_and_optimizer_as_they_were_and_is_counted()
    {
        using var session = new TrainingSession(Options, SingleProcessCollectives.Instance, NullLogger.Instance, Faults("nan@3"));
        var steps = new List<StepMetrics>();
        Dictionary<string, torch.Tensor>? afterStep2 = null;
        Dictionary<string, torch.Tensor>? afterStep3 = null;
        session.Train(m =>
        {
            steps.Add(m);
            if (m.Step == 2)
            {
                afterStep2 = Snapshot(session);
            }
            else if (m.Step == 3)
            {
                afterStep3 = Snapshot(session);
            }
        }, CancellationToken.None);

        Assert.Equal([false, false, true, false, false, false], steps.Select(m => m.Skipped));
        Assert.True(double.IsNaN(steps[2].GradNorm), $"expected a NaN gradient norm at step 3, got {steps[2].GradNorm}");
        Assert.Equal(6, session.StepsDone);
        Assert.Equal(1, session.SkippedSteps);
        foreach (var (name, before) in afterStep2!)
        {
            Assert.True(before.eq(afterStep3![name]).all().item<bool>(), $"{name} changed in the skipped step 3");
        }

        Assert.All(session.Model.named_parameters(), p => Assert.True(torch.isfinite(p.parameter).all().item<bool>(), $"{p.name} is not finite"));
        Assert.True(double.IsFinite(steps[^1].Loss), $"expected a finite last loss, got {steps[^1].Loss}");
        var summary = session.Summarize(1);
        Assert.Equal(1, summary.SkippedSteps);
        Assert.Contains("\"skipped_steps\": 1", summary.ToJson(), StringComparison.Ordinal);
    }

    [Fact]
    public void As_many_skipped_steps_in_a_row_as_allowed_do_not_stop_the_run()
    {
        using var session = new TrainingSession(Options with { MaxSkippedSteps = 3 }, SingleProcessCollectives.Instance, NullLogger.Instance, Faults("nan@2-4"));

        session.Train(null, CancellationToken.None);

        Assert.Equal((6L, 3L), (session.StepsDone, session.SkippedSteps));
    }

    [Fact]
    public void One_more_skipped_step_in_a_row_than_allowed_stops_training_as_diverged_naming_the_steps()
    {
        using var session = new TrainingSession(Options with { MaxSkippedSteps = 3 }, SingleProcessCollectives.Instance, NullLogger.Instance, Faults("nan@2-5"));

        var e = Assert.Throws<TrainingDivergedException>(() => session.Train(null, CancellationToken.None));

        Assert.Equal((2L, 5L), (e.FirstStep, e.LastStep));
        Assert.StartsWith("training diverged: steps 2–5 had a non-finite gradient norm (4 in a row, more than max_skipped_steps 3; ", e.Message, StringComparison.Ordinal);
        Assert.Contains("step 5: gradient norm NaN", e.Message, StringComparison.Ordinal);
        Assert.Equal(5, session.StepsDone);
        Assert.All(session.Model.named_parameters(), p => Assert.True(torch.isfinite(p.parameter).all().item<bool>(), $"{p.name} is not finite"));
    }

    [Fact]
    public void A_finite_step_between_skipped_ones_resets_the_count_in_a_row()
    {
        using var session = new TrainingSession(Options with { MaxSkippedSteps = 1 }, SingleProcessCollectives.Instance, NullLogger.Instance, Faults("nan@2;nan@4;nan@6"));

        session.Train(null, CancellationToken.None);

        Assert.Equal(3, session.SkippedSteps);
    }

    [Fact]
    public void Save_refuses_a_non_finite_parameter_naming_it_and_commits_nothing()
    {
        var store = new CheckpointStore(new CheckpointOptions(_dir, "nan-params"));
        using var session = new TrainingSession(Options with { StopAtStep = 1 }, SingleProcessCollectives.Instance, NullLogger.Instance);
        session.Train(null, CancellationToken.None);
        session.Save(store, CancellationToken.None);
        var (name, parameter) = session.Model.named_parameters().Last();
        using (torch.no_grad())
        {
            parameter.view(-1)[0] = float.PositiveInfinity;
        }

        var e = Assert.Throws<InvalidOperationException>(() => session.Save(store, CancellationToken.None));

        Assert.Equal($"not committing a checkpoint at step 1: parameter {name} is not finite", e.Message);
        Assert.Equal([1L], store.CommittedSteps());
        Assert.Empty(Directory.GetFileSystemEntries(store.RunDirectory, ".tmp-*"));
    }

    [Fact]
    public void Save_refuses_a_non_finite_optimizer_moment_naming_it()
    {
        var store = new CheckpointStore(new CheckpointOptions(_dir, "nan-moments"));
        using var session = new TrainingSession(Options with { StopAtStep = 1 }, SingleProcessCollectives.Instance, NullLogger.Instance);
        session.Train(null, CancellationToken.None);
        var optimizer = (OptimizerHelper)session.Optimizer;
        var state = (AdamW.State)optimizer.state_dict().State[0];
        state.exp_avg_sq.view(-1)[0] = float.NaN;

        var e = Assert.Throws<InvalidOperationException>(() => session.Save(store, CancellationToken.None));

        Assert.Contains("the optimizer's exp_avg_sq of", e.Message, StringComparison.Ordinal);
        Assert.Empty(store.CommittedSteps());
    }

    [Fact]
    public void A_checkpoint_whose_curve_holds_NaN_and_infinite_losses_writes_and_reads_back()
    {
        var store = new CheckpointStore(new CheckpointOptions(_dir, "nan-history"));
        var state = new CheckpointState
        {
            Epoch = 0,
            BatchInEpoch = 3,
            Rng = [1, 2],
            Samples = 48,
            TrainSeconds = double.PositiveInfinity,
            SkippedSteps = 2,
            History = [new HistoryPoint(1, 2.5, 1e-4, 10, null), new HistoryPoint(2, double.NaN, 1e-4, 10, null), new HistoryPoint(3, double.PositiveInfinity, 1e-4, 10, null)],
            DataOrder = "00",
        };
        store.Commit(3, state.ToJson(), System.Text.Json.JsonSerializer.SerializeToElement(new { model = "clip-micro" }), new Dictionary<string, Action<Stream>>(),
            CancellationToken.None);

        var read = CheckpointState.Of(store.ResolveLatest(CancellationToken.None)!);

        Assert.Equal(state.History, read.History);
        Assert.Equal((2L, double.PositiveInfinity), (read.SkippedSteps, read.TrainSeconds));
    }

    [Fact]
    public void The_hooks_see_every_phase_of_a_step_in_order_with_the_step_being_computed()
    {
        var store = new CheckpointStore(new CheckpointOptions(_dir, "phases"));
        var hooks = new Recorder();
        using var session = new TrainingSession(Options with { StopAtStep = 2 }, SingleProcessCollectives.Instance, NullLogger.Instance, hooks);

        session.Train(null, CancellationToken.None);
        session.Save(store, CancellationToken.None);

        string[] step(int n) => [$"data {n}", $"forward {n}", $"exchange {n}", $"backward {n}", $"poison? {n}", $"reduce {n}", $"optimizer {n}"];
        Assert.Equal([.. step(1), .. step(2), "checkpoint 2"], hooks.Seen);
    }

    [Fact]
    public void A_write_failure_injected_at_the_checkpoint_leaves_the_previous_one_and_no_leftovers()
    {
        var store = new CheckpointStore(new CheckpointOptions(_dir, "write-fail"));
        using var session = new TrainingSession(Options with { StopAtStep = 3 }, SingleProcessCollectives.Instance, NullLogger.Instance, Faults("write-fail@2"));
        var failures = new List<(long Step, string Message)>();

        session.Train(m =>
        {
            try
            {
                session.Save(store, CancellationToken.None);
            }
            catch (IOException e)
            {
                failures.Add((m.Step, e.Message));
            }
        }, CancellationToken.None);

        Assert.Equal([(2L, "No space left on device (injected by DISTCLIP_FAULTS)")], failures);
        Assert.Equal([1L, 3L], store.CommittedSteps());
        Assert.Empty(Directory.GetFileSystemEntries(store.RunDirectory, ".tmp-*"));
        Assert.Equal(TrainingPhase.Finished, session.Phase);
    }

    private static Dictionary<string, torch.Tensor> Snapshot(TrainingSession session)
    {
        var copies = session.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var states = ((OptimizerHelper)session.Optimizer).state_dict().State;
        for (int i = 0; i < states.Count; i++)
        {
            var s = (AdamW.State)states[i];
            copies[$"exp_avg {i}"] = s.exp_avg.clone();
            copies[$"exp_avg_sq {i}"] = s.exp_avg_sq.clone();
        }

        return copies;
    }

    /// <summary>Records the hooks' calls as "point step".</summary>
    private sealed class Recorder : IStepHooks
    {
        public List<string> Seen { get; } = [];

        public void At(TrainingPhase point, long step) => Seen.Add($"{FaultPlan.PointName(point)} {step}");

        public bool PoisonGradients(long step)
        {
            Seen.Add($"poison? {step}");
            return false;
        }
    }
}

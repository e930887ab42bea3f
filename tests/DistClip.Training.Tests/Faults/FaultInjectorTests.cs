using DistClip.Training.Faults;

namespace DistClip.Training.Tests.Faults;

/// <summary>Faults fire where and when the plan says, and each (fault, step) once per run, whichever process reaches it first.</summary>
public sealed class FaultInjectorTests : IDisposable
{
    private readonly string _state = Path.Combine(Path.GetTempPath(), "distclip-fault-state-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_state))
        {
            Directory.Delete(_state, recursive: true);
        }
    }

    [Fact]
    public void A_throw_fires_at_its_point_and_step_only_and_names_itself()
    {
        var said = new List<string>();
        var hooks = new FaultInjector(FaultPlan.Parse("throw@3,point=reduce"), rank: 0, _state, said.Add);

        hooks.At(TrainingPhase.Forward, 3);
        hooks.At(TrainingPhase.Reduce, 2);
        var e = Assert.Throws<InvalidOperationException>(() => hooks.At(TrainingPhase.Reduce, 3));

        Assert.StartsWith("injected failure", e.Message, StringComparison.Ordinal);
        Assert.Contains("step 3", e.Message, StringComparison.Ordinal);
        Assert.Equal(["DISTCLIP_FAULTS: throw at step 3, reduce, rank 0 (throw@3,point=reduce)"], said);
    }

    [Fact]
    public void A_fault_fires_once_per_run_even_in_a_replacement_process()
    {
        var plan = FaultPlan.Parse("throw@2");
        var first = new FaultInjector(plan, rank: 1, _state);
        Assert.Throws<InvalidOperationException>(() => first.At(TrainingPhase.Forward, 2));

        // The replacement redoing step 2 shares the state directory: the marker is there.
        var replacement = new FaultInjector(plan, rank: 1, _state);
        replacement.At(TrainingPhase.Forward, 2);
        first.At(TrainingPhase.Forward, 2);
    }

    [Fact]
    public void A_range_of_nans_poisons_each_step_of_the_range_once_on_the_named_rank()
    {
        var plan = FaultPlan.Parse("nan@5-6,rank=1");
        var rank0 = new FaultInjector(plan, rank: 0, _state);
        var rank1 = new FaultInjector(plan, rank: 1, _state);

        Assert.Equal([false, false, false, false], new long[] { 4, 5, 6, 7 }.Select(rank0.PoisonGradients));
        Assert.Equal([false, true, true, false], new long[] { 4, 5, 6, 7 }.Select(rank1.PoisonGradients));
        Assert.Equal([false, false], new long[] { 5, 6 }.Select(rank1.PoisonGradients));
    }

    [Fact]
    public void Without_a_rank_the_first_rank_to_reach_the_step_fires_and_the_others_do_not()
    {
        var plan = FaultPlan.Parse("nan@3");

        Assert.True(new FaultInjector(plan, rank: 1, _state).PoisonGradients(3));
        Assert.False(new FaultInjector(plan, rank: 0, _state).PoisonGradients(3));
    }

    [Fact]
    public void A_write_fail_throws_disk_full_from_the_checkpoint_point()
    {
        var hooks = new FaultInjector(FaultPlan.Parse("write-fail@2"), rank: 0, _state);

        hooks.At(TrainingPhase.Checkpoint, 1);
        var e = Assert.Throws<IOException>(() => hooks.At(TrainingPhase.Checkpoint, 2));

        Assert.Equal("No space left on device (injected by DISTCLIP_FAULTS)", e.Message);
        hooks.At(TrainingPhase.Checkpoint, 2);
    }

    [Fact]
    public void The_same_kind_at_the_same_step_twice_in_a_plan_fires_twice()
    {
        // Markers are per fault of the plan, not per kind: both entries fire.
        var hooks = new FaultInjector(FaultPlan.Parse("throw@1,point=data;throw@1,point=data"), rank: 0, _state);

        Assert.Throws<InvalidOperationException>(() => hooks.At(TrainingPhase.Data, 1));
        Assert.Throws<InvalidOperationException>(() => hooks.At(TrainingPhase.Data, 1));
        hooks.At(TrainingPhase.Data, 1);
    }
}

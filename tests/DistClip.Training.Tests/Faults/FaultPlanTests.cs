using DistClip.Training.Faults;

namespace DistClip.Training.Tests.Faults;

/// <summary>The DISTCLIP_FAULTS grammar: what it reads, what it refuses and why.</summary>
public sealed class FaultPlanTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void No_text_is_no_fault(string? text) => Assert.True(FaultPlan.Parse(text).IsEmpty);

    [Fact]
    public void Each_kind_takes_its_default_point_and_any_rank()
    {
        var plan = FaultPlan.Parse("kill@3;stall@4;nan@5;write-fail@6;throw@7");

        Assert.Equal(
            [
                (FaultKind.Kill, 3L, 3L, (int?)null, TrainingPhase.Forward),
                (FaultKind.Stall, 4L, 4L, null, TrainingPhase.Forward),
                (FaultKind.Nan, 5L, 5L, null, TrainingPhase.Backward),
                (FaultKind.WriteFail, 6L, 6L, null, TrainingPhase.Checkpoint),
                (FaultKind.Throw, 7L, 7L, null, TrainingPhase.Forward),
            ],
            plan.Faults.Select(f => (f.Kind, f.First, f.Last, f.Rank, f.Point)));
    }

    [Fact]
    public void A_range_a_rank_and_a_point_are_read_in_either_order()
    {
        var plan = FaultPlan.Parse(" nan@5-9,rank=1 ; kill@2,point=reduce,rank=0;throw@1,point=data ");

        Assert.Equal(
            [
                (FaultKind.Nan, 5L, 9L, (int?)1, TrainingPhase.Backward),
                (FaultKind.Kill, 2L, 2L, 0, TrainingPhase.Reduce),
                (FaultKind.Throw, 1L, 1L, null, TrainingPhase.Data),
            ],
            plan.Faults.Select(f => (f.Kind, f.First, f.Last, f.Rank, f.Point)));
    }

    [Theory]
    [InlineData("data", TrainingPhase.Data)]
    [InlineData("forward", TrainingPhase.Forward)]
    [InlineData("exchange", TrainingPhase.Exchange)]
    [InlineData("backward", TrainingPhase.Backward)]
    [InlineData("reduce", TrainingPhase.Reduce)]
    [InlineData("optimizer", TrainingPhase.Optimizer)]
    [InlineData("checkpoint", TrainingPhase.Checkpoint)]
    public void Every_point_has_its_name(string name, TrainingPhase point)
    {
        Assert.Equal(point, FaultPlan.Parse($"stall@1,point={name}").Faults[0].Point);
        Assert.Equal(name, FaultPlan.PointName(point));
    }

    [Fact]
    public void A_fault_matches_its_point_its_steps_and_its_rank_only()
    {
        var fault = FaultPlan.Parse("kill@5-6,rank=1,point=reduce").Faults[0];

        Assert.True(fault.Matches(TrainingPhase.Reduce, 5, 1));
        Assert.True(fault.Matches(TrainingPhase.Reduce, 6, 1));
        Assert.False(fault.Matches(TrainingPhase.Reduce, 4, 1));
        Assert.False(fault.Matches(TrainingPhase.Reduce, 7, 1));
        Assert.False(fault.Matches(TrainingPhase.Reduce, 5, 0));
        Assert.False(fault.Matches(TrainingPhase.Forward, 5, 1));
    }

    [Theory]
    [InlineData("kill", "no '@STEP'")]
    [InlineData("explode@3", "'explode' is not a kind")]
    [InlineData("KILL@3", "'KILL' is not a kind")]
    [InlineData("kill@0", "'0' is not a step")]
    [InlineData("kill@x", "'x' is not a step")]
    [InlineData("kill@-3", "'' is not a step")]
    [InlineData("kill@3-", "'' is not a step")]
    [InlineData("kill@9-5", "the range 9-5 ends before it starts")]
    [InlineData("kill@3,rank=-1", "rank '-1' is not a rank")]
    [InlineData("kill@3,rank=1,rank=2", "rank given twice")]
    [InlineData("kill@3,point=loss", "'loss' is not a point")]
    [InlineData("kill@3,when=now", "'when=now' is not rank=R or point=P")]
    [InlineData("nan@3,point=forward", "nan happens only at point=backward")]
    [InlineData("write-fail@3,point=data", "write-fail happens only at point=checkpoint")]
    [InlineData("kill@3;;nan@4", "an empty fault")]
    [InlineData("kill@3;", "an empty fault")]
    public void Bad_text_is_refused_naming_the_fault_and_the_grammar(string text, string why)
    {
        var e = Assert.Throws<FormatException>(() => FaultPlan.Parse(text));

        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        Assert.Contains("KIND@STEP[-LAST][,rank=R][,point=P]", e.Message, StringComparison.Ordinal);
    }
}

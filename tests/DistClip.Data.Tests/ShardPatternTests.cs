namespace DistClip.Data.Tests;

public sealed class ShardPatternTests
{
    [Fact]
    public void Zero_padded_range_keeps_its_width()
    {
        Assert.Equal(
            ["shards-000.tar", "shards-001.tar", "shards-002.tar"],
            ShardPattern.Expand("shards-{000..002}.tar"));
    }

    [Fact]
    public void Range_crossing_a_digit_boundary_pads_to_the_wider_bound()
    {
        IReadOnlyList<string> names = ShardPattern.Expand("s-{08..11}");

        Assert.Equal(["s-08", "s-09", "s-10", "s-11"], names);
    }

    [Fact]
    public void Unpadded_range_is_not_padded_and_descending_ranges_count_down()
    {
        Assert.Equal(["a9", "a10"], ShardPattern.Expand("a{9..10}"));
        Assert.Equal(["a3", "a2", "a1"], ShardPattern.Expand("a{3..1}"));
    }

    [Fact]
    public void Several_groups_expand_left_to_right_with_the_last_varying_fastest()
    {
        Assert.Equal(
            ["train-0.tar", "train-1.tar", "val-0.tar", "val-1.tar"],
            ShardPattern.Expand("{train,val}-{0..1}.tar"));
    }

    [Fact]
    public void Nested_groups_expand_inside_comma_lists()
    {
        Assert.Equal(["x-a1", "x-a2", "x-b"], ShardPattern.Expand("x-{a{1..2},b}"));
    }

    [Fact]
    public void Pattern_without_braces_or_with_a_literal_group_is_returned_as_is()
    {
        Assert.Equal(["/data/one.tar"], ShardPattern.Expand("/data/one.tar"));
        Assert.Equal(["a{x}b-1", "a{x}b-2"], ShardPattern.Expand("a{x}b-{1..2}"));
    }

    [Fact]
    public void Unbalanced_or_malformed_patterns_are_refused_by_name()
    {
        DataException unbalanced = Assert.Throws<DataException>(() => ShardPattern.Expand("shards-{000..009.tar"));
        Assert.Contains("shards-{000..009.tar", unbalanced.Message);
        Assert.Throws<DataException>(() => ShardPattern.Expand("s-{a..c}"));
        Assert.Throws<DataException>(() => ShardPattern.Expand("s-{0..99999999}"));
    }
}

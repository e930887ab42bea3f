namespace DistClip.Data.Tests;

public sealed class SplitMix64Tests
{
    [Fact]
    public void Matches_the_reference_sequence()
    {
        // Reference outputs of Vigna's splitmix64.c seeded with 1234567.
        var random = new SplitMix64(1234567);

        Assert.Equal(6457827717110365317UL, random.Next());
        Assert.Equal(3203168211198807973UL, random.Next());
        Assert.Equal(9817491932198370423UL, random.Next());
    }

    [Fact]
    public void Bounded_draws_stay_in_range_and_cover_it()
    {
        var random = new SplitMix64(3);
        int[] counts = new int[7];
        for (int i = 0; i < 7000; i++)
        {
            counts[random.NextBelow(7)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
    }
}

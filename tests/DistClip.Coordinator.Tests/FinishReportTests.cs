using DistClip.Config;
using DistClip.Coordinator.Runs;

namespace DistClip.Coordinator.Tests;

/// <summary>What the coordinator keeps of a phase table a worker reports with its Finish: it comes over the network.</summary>
public sealed class FinishReportTests
{
    [Fact]
    public void Only_known_phases_with_finite_non_negative_seconds_are_kept()
    {
        var reported = new Dictionary<string, double>
        {
            ["forward"] = 0.43,
            ["backward"] = 1.02,
            ["all_reduce"] = 0,
            ["all_gather"] = double.NaN,
            ["optimizer"] = double.PositiveInfinity,
            ["loss"] = -1,
            ["Forward"] = 9, // names are exact
            ["<script>"] = 1,
        };
        for (int i = 0; i < 10_000; i++)
        {
            reported[$"junk{i}"] = i;
        }

        var kept = FinishReport.KnownPhases(reported);

        Assert.Equal(new Dictionary<string, double> { ["forward"] = 0.43, ["backward"] = 1.02, ["all_reduce"] = 0 }, kept);
        Assert.All(kept.Keys, k => Assert.Contains(k, RunSummary.PhaseNames));
    }

    [Fact]
    public void Only_known_waits_with_finite_non_negative_seconds_are_kept()
    {
        var reported = new Dictionary<string, double>
        {
            ["exposed_communication"] = 0.004,
            ["peer_wait"] = double.NaN,
            ["forward"] = 0.43, // a phase, not a wait
            ["Peer_wait"] = 1,
        };
        for (int i = 0; i < 10_000; i++)
        {
            reported[$"junk{i}"] = i;
        }

        var kept = FinishReport.Known(reported, RunSummary.WaitNames);

        Assert.Equal(new Dictionary<string, double> { ["exposed_communication"] = 0.004 }, kept);
    }
}

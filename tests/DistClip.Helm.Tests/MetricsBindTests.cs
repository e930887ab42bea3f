namespace DistClip.Helm.Tests;

/// <summary>
/// Outside the chart both programs keep metrics on loopback; in it the Service and the monitors reach
/// them through the pod's address, so the chart opens them explicitly (#15 part 3).
/// </summary>
public sealed class MetricsBindTests
{
    [Fact]
    public void Both_programs_are_told_to_serve_metrics_on_every_address()
    {
        var chart = RenderedChart.Of(null);

        Assert.Equal("0.0.0.0", WorkerJobTests.Option(chart.WorkerContainer, "--metrics-bind"));
        Assert.Contains("--metrics-bind 0.0.0.0", Assert.Single(chart.CoordinatorContainer.Args));
    }
}

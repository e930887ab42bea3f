using System.Net;
using DistClip.Coordinator.Cli;
using DistClip.Coordinator.Launchers;
using DistClip.Coordinator.Runs;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistClip.Coordinator.Tests;

/// <summary>Metrics describe the run (hosts, progress, memory): they leave the host only when asked to (#15 part 3).</summary>
public sealed class MetricsBindTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-metrics-").FullName;
    private readonly Membership _run;

    public MetricsBindTests() => _run = Runs.Membership(_dir, "metrics", workers: 1);

    public void Dispose()
    {
        _run.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_coordinators_metrics_listen_on_loopback_unless_told_even_when_serve_listens_everywhere(bool serve)
    {
        string[] bind = serve ? ["--bind", "0.0.0.0"] : [];

        Assert.Equal(IPAddress.Loopback, CoordinatorCommand.Parse(bind, serve).MetricsBind);
        Assert.Equal(IPAddress.Any, CoordinatorCommand.Parse([.. bind, "--metrics-bind", "0.0.0.0"], serve).MetricsBind);
    }

    [Fact]
    public async Task An_ssh_worker_listens_for_peers_everywhere_but_keeps_metrics_on_loopback_unless_the_coordinators_are_open()
    {
        HostEntry[] hosts = [new("node-a", 1, null, null)];
        await using var closed = new SshLauncher(_run, new Uri("http://10.0.0.1:29400"), hosts, null, [], "worker", NullLogger.Instance, IPAddress.Loopback);
        await using var open = new SshLauncher(_run, new Uri("http://10.0.0.1:29400"), hosts, null, [], "worker", NullLogger.Instance, IPAddress.Any);

        string closedCommand = closed.StartInfoOf(0).ArgumentList[^1];
        Assert.Contains("--bind 0.0.0.0", closedCommand);
        Assert.DoesNotContain("--metrics-bind", closedCommand);
        Assert.Contains(" --metrics-bind 0.0.0.0 </dev/null ", open.StartInfoOf(0).ArgumentList[^1]);
    }
}

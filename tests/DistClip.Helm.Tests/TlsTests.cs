using k8s.Models;

namespace DistClip.Helm.Tests;

/// <summary>tls.enabled mounts the run's TLS Secret into the coordinator and every worker and passes it as --tls-dir; off, nothing of it renders.</summary>
public sealed class TlsTests
{
    private const string TlsDir = "/etc/distclip/tls";

    [Fact]
    public void Enabled_tls_mounts_the_secret_into_both_programs_and_passes_tls_dir()
    {
        var chart = RenderedChart.Of(null, "tls.enabled=true", "tls.secretName=run-tls");

        var programs = chart.PodSpecs.Where(p => p.Spec.Containers.Any(c => c.Name is "coordinator" or "worker")).ToList();
        Assert.Equal(2, programs.Count);
        foreach (var (owner, spec) in programs)
        {
            var volume = Assert.Single(spec.Volumes, v => v.Secret?.SecretName == "run-tls");
            Assert.Equal(["ca.crt", "tls.crt", "tls.key"], volume.Secret.Items.Select(i => i.Key));
            var program = spec.Containers.Single(c => c.Name is "coordinator" or "worker");
            var mount = Assert.Single(program.VolumeMounts, m => m.Name == volume.Name);
            Assert.True(mount.MountPath == TlsDir && mount.ReadOnlyProperty == true, $"{owner} mounts the TLS Secret at {mount.MountPath}, read-only {mount.ReadOnlyProperty}");
        }

        Assert.Contains($"--tls-dir {TlsDir}", Assert.Single(chart.CoordinatorContainer.Args));
        var workerArgs = chart.WorkerContainer.Args.ToList();
        Assert.Equal(TlsDir, workerArgs[workerArgs.IndexOf("--tls-dir") + 1]);
        // The kubelet's gRPC probe speaks no TLS: the coordinator is probed over TCP instead.
        Assert.Null(chart.CoordinatorContainer.ReadinessProbe.Grpc);
        Assert.Equal("grpc", chart.CoordinatorContainer.ReadinessProbe.TcpSocket.Port.Value);
    }

    [Fact]
    public void Disabled_tls_renders_no_tls_volume_mount_or_flag()
    {
        var chart = RenderedChart.Of(null);

        foreach (var (_, spec) in chart.PodSpecs)
        {
            Assert.DoesNotContain(spec.Volumes ?? [], v => v.Name == "run-tls");
            Assert.DoesNotContain((spec.InitContainers ?? []).Concat(spec.Containers), c => (c.VolumeMounts ?? []).Any(m => m.MountPath == TlsDir));
        }

        Assert.DoesNotContain("--tls", Assert.Single(chart.CoordinatorContainer.Args));
        Assert.DoesNotContain(chart.WorkerContainer.Args, a => a.StartsWith("--tls", StringComparison.Ordinal));
        Assert.NotNull(chart.CoordinatorContainer.ReadinessProbe.Grpc);
    }

    [Fact]
    public void Enabled_tls_without_a_secret_name_is_refused_by_name()
    {
        var result = HelmProcess.Run(RenderedChart.TemplateArguments(HelmProcess.ChartDirectory, null, "tls.enabled=true"));

        Assert.True(result.ExitCode != 0, $"helm template succeeded without tls.secretName: {result.Describe()}");
        Assert.Contains("tls.secretName:", result.Error);
    }

    [Fact]
    public void A_misspelled_tls_value_is_refused_by_the_schema()
    {
        var result = HelmProcess.Run(RenderedChart.TemplateArguments(HelmProcess.ChartDirectory, null, "tls.secret=run-tls"));

        Assert.True(result.ExitCode != 0, $"helm template --set tls.secret succeeded: {result.Describe()}");
        Assert.Contains("at '/tls': additional properties 'secret' not allowed", result.Error);
    }
}

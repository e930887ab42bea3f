using DistClip.Config;
namespace DistClip.Helm.Tests;

/// <summary>The coordinator Deployment: one replica, never two at once, probed on its control port, resuming its own run.</summary>
public sealed class CoordinatorTests
{
    [Fact]
    public void The_coordinator_is_one_replica_replaced_by_recreate()
    {
        var deployment = RenderedChart.Of(null).Coordinator.Spec;

        Assert.Equal(1, deployment.Replicas);
        Assert.Equal("Recreate", deployment.Strategy.Type);
    }

    [Fact]
    public void Probes_use_grpc_health_checking_by_default()
    {
        var coordinator = RenderedChart.Of(null).CoordinatorContainer;

        foreach (var probe in new[] { coordinator.StartupProbe, coordinator.ReadinessProbe, coordinator.LivenessProbe })
        {
            Assert.Equal(29400, probe.Grpc.Port);
            Assert.Null(probe.TcpSocket);
        }
    }

    [Fact]
    public void Probes_dial_the_control_port_over_tcp_when_asked()
    {
        var coordinator = RenderedChart.Of(null, "coordinator.probe=tcp").CoordinatorContainer;

        foreach (var probe in new[] { coordinator.StartupProbe, coordinator.ReadinessProbe, coordinator.LivenessProbe })
        {
            Assert.Equal("grpc", probe.TcpSocket.Port.Value);
            Assert.Null(probe.Grpc);
        }
    }

    [Fact]
    public void Probes_use_grpc_health_checking_when_asked()
    {
        var coordinator = RenderedChart.Of(null, "coordinator.probe=grpc", "coordinator.port=29401").CoordinatorContainer;

        foreach (var probe in new[] { coordinator.StartupProbe, coordinator.ReadinessProbe, coordinator.LivenessProbe })
        {
            Assert.Equal(29401, probe.Grpc.Port);
            Assert.Null(probe.Grpc.Service); // the server's overall health
            Assert.Null(probe.TcpSocket);
        }
    }

    [Fact]
    public void The_coordinator_serves_the_configured_run_and_resumes_it_after_a_restart()
    {
        var chart = RenderedChart.Of(null);
        var container = chart.CoordinatorContainer;
        string script = Assert.Single(container.Args);
        var configMount = Assert.Single(container.VolumeMounts, m => m.Name == "config");
        var configVolume = Assert.Single(chart.Coordinator.Spec.Template.Spec.Volumes, v => v.Name == "config");

        Assert.Equal(["/bin/bash", "-c"], container.Command);
        Assert.Contains("set -- serve --bind 0.0.0.0 --port 29400", script);
        Assert.Contains($"--config {configMount.MountPath}/config.json", script);
        Assert.EndsWith("exec /app/coordinator \"$@\"\n", script);
        Assert.Contains("if [ -f /data/checkpoints/run1/latest ]; then set -- \"$@\" --resume latest; fi", script);
        Assert.Equal("run1", chart.RunConfig.GetProperty("run_id").GetString());
        Assert.Equal(chart.All<k8s.Models.V1ConfigMap>().Single(c => c.Data.ContainsKey("config.json")).Metadata.Name, configVolume.ConfigMap.Name);
        Assert.True(chart.Coordinator.Spec.Template.Metadata.Annotations.ContainsKey("checksum/config"), "a changed config must restart the coordinator");
    }

    [Fact]
    public void The_user_settings_reach_the_run_config_unchanged()
    {
        var config = RenderedChart.Of("gpu-values.yaml").RunConfig;

        Assert.Equal("clip-tiny", config.GetProperty("model").GetString());
        Assert.Equal(1024, config.GetProperty("global_batch").GetInt32());
        Assert.Equal(2000, config.GetProperty("steps").GetInt32());
        Assert.Equal("cuda", config.GetProperty("device").GetString());
    }

    [Fact]
    public void The_service_exposes_the_control_plane_as_h2c_and_the_metrics()
    {
        var service = RenderedChart.Of(null).CoordinatorService;

        var grpc = Assert.Single(service.Spec.Ports, p => p.Name == "grpc");
        Assert.Equal((29400, "kubernetes.io/h2c"), (grpc.Port, grpc.AppProtocol));
        Assert.Equal("metrics", Assert.Single(service.Spec.Ports, p => p.Name == "metrics").TargetPort.Value);
    }
}

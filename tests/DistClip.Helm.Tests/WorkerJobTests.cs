using DistClip.Config;
using k8s.Models;

namespace DistClip.Helm.Tests;

/// <summary>The worker Indexed Job: one pod per rank, wired to its rank, its peers and the coordinator.</summary>
public sealed class WorkerJobTests
{
    public static TheoryData<string> CiValues => new(HelmProcess.CiValuesFiles());

    [Theory]
    [MemberData(nameof(CiValues))]
    public void World_size_is_the_configured_workers_in_completions_parallelism_and_gang(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        int workers = chart.RunConfig.GetProperty("workers").GetInt32();
        var job = chart.WorkerJob.Spec;

        Assert.Equal("Indexed", job.CompletionMode);
        Assert.Equal(workers, job.Completions);
        Assert.Equal(workers, job.Parallelism);
        foreach (var group in chart.All<PodGroup>())
        {
            Assert.Equal(workers, group.Spec.MinMember);
        }
    }

    [Fact]
    public void The_world_size_follows_config_workers()
    {
        var chart = RenderedChart.Of(null, "config.workers=8");

        Assert.Equal(8, chart.RunConfig.GetProperty("workers").GetInt32());
        Assert.Equal(8, chart.WorkerJob.Spec.Completions);
        Assert.Equal(8, chart.WorkerJob.Spec.Parallelism);
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Each_worker_asks_for_the_rank_of_its_completion_index(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        var worker = chart.WorkerContainer;

        Assert.Equal("$(JOB_COMPLETION_INDEX)", Option(worker, "--preferred-rank"));
        // $(VAR) in arguments expands only variables the container declares.
        var index = Assert.Single(worker.Env, e => e.Name == "JOB_COMPLETION_INDEX");
        Assert.Equal("metadata.annotations['batch.kubernetes.io/job-completion-index']", index.ValueFrom.FieldRef.FieldPath);
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Workers_dial_the_coordinator_service_on_its_control_port(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        var service = chart.CoordinatorService;
        var grpc = Assert.Single(service.Spec.Ports, p => p.Name == "grpc");
        var container = chart.CoordinatorContainer;

        Assert.Equal($"{service.Metadata.Name}.{RenderedChart.Namespace}.svc:{grpc.Port}", Option(chart.WorkerContainer, "--coordinator"));
        Assert.Equal("grpc", grpc.TargetPort.Value);
        Assert.Equal(grpc.Port, Assert.Single(container.Ports, p => p.Name == "grpc").ContainerPort);
        Assert.Contains($"--port {grpc.Port} ", Assert.Single(container.Args));
    }

    [Fact]
    public void The_link_stack_is_a_worker_value_direct_unless_set()
    {
        Assert.Equal("direct", Option(RenderedChart.Of(null).WorkerContainer, "--link"));
        Assert.Equal("grpc", Option(RenderedChart.Of(null, "workers.link=grpc").WorkerContainer, "--link"));
        var refused = HelmProcess.Run(RenderedChart.TemplateArguments(HelmProcess.ChartDirectory, null, "workers.link=quic"));
        Assert.True(refused.ExitCode != 0, $"workers.link=quic rendered: {refused.Describe()}");
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Each_worker_advertises_its_stable_name_in_the_headless_service(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        var job = chart.WorkerJob;
        var headless = chart.WorkerService;
        var worker = chart.WorkerContainer;
        int port = Assert.Single(worker.Ports, p => p.Name == "collectives").ContainerPort;

        Assert.Equal("None", headless.Spec.ClusterIP);
        Assert.True(headless.Spec.PublishNotReadyAddresses, "peers must resolve a worker before it is ready");
        Assert.Equal(headless.Metadata.Name, job.Spec.Template.Spec.Subdomain);
        // An Indexed Job's pods are named <job>-<index> as hosts; with the subdomain that is a DNS name.
        Assert.Equal($"{job.Metadata.Name}-$(JOB_COMPLETION_INDEX).{headless.Metadata.Name}.{RenderedChart.Namespace}.svc", Option(worker, "--advertise-host"));
        Assert.Equal("0.0.0.0", Option(worker, "--bind"));
        Assert.Equal(port.ToString(System.Globalization.CultureInfo.InvariantCulture), Option(worker, "--port"));
        Assert.Equal(port, Assert.Single(headless.Spec.Ports, p => p.Name == "collectives").Port);
        Assert.True(job.Metadata.Name.Length + 4 <= 63, $"host name {job.Metadata.Name}-NNN must fit a DNS label");
    }

    [Fact]
    public void Gpu_limit_equals_the_value()
    {
        var gpu = RenderedChart.Of("gpu-values.yaml").WorkerContainer.Resources;
        var two = RenderedChart.Of(null, "workers.gpus=2").WorkerContainer.Resources;
        var none = RenderedChart.Of(null).WorkerContainer.Resources;

        Assert.Equal(new ResourceQuantity("1"), gpu.Limits["nvidia.com/gpu"]);
        Assert.Equal(new ResourceQuantity("4"), gpu.Limits["cpu"]);
        Assert.Equal(new ResourceQuantity("2"), two.Limits["nvidia.com/gpu"]);
        Assert.False(none.Limits.ContainsKey("nvidia.com/gpu"), "a CPU release asks for no GPU");
        Assert.False(gpu.Requests.ContainsKey("nvidia.com/gpu"), "extended resources go in limits; requests follow them");
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Nothing_in_a_worker_overrides_the_gpu_the_device_plugin_gives_it(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        var spec = chart.WorkerJob.Spec.Template.Spec;

        foreach (var container in (spec.InitContainers ?? []).Concat(spec.Containers))
        {
            var set = (container.Env ?? []).Select(e => e.Name).Where(n => n is "CUDA_VISIBLE_DEVICES" or "NVIDIA_VISIBLE_DEVICES");
            Assert.True(!set.Any(), $"{ciValuesFile}: worker container {container.Name} sets {string.Join(", ", set)}");
        }

        Assert.DoesNotContain("VISIBLE_DEVICES", string.Join(' ', chart.WorkerContainer.Args));
    }

    [Theory]
    [InlineData("CUDA_VISIBLE_DEVICES")]
    [InlineData("NVIDIA_VISIBLE_DEVICES")]
    public void Extra_env_that_would_override_the_device_plugin_is_refused(string variable)
    {
        var result = HelmProcess.Run(RenderedChart.TemplateArguments(HelmProcess.ChartDirectory, "gpu-values.yaml",
            $"extraEnv[0].name={variable}", "extraEnv[0].value=all"));

        Assert.True(result.ExitCode != 0, $"helm template with extraEnv {variable} succeeded: {result.Describe()}");
        Assert.Contains($"extraEnv: {variable} must not be set", result.Error);
    }

    [Fact]
    public void Workers_run_where_the_values_place_them()
    {
        var gpu = RenderedChart.Of("gpu-values.yaml").WorkerJob.Spec.Template.Spec;
        var cpu = RenderedChart.Of(null).WorkerJob.Spec.Template.Spec;

        Assert.Equal("nvidia", gpu.RuntimeClassName);
        Assert.Equal("true", gpu.NodeSelector["nvidia.com/gpu.present"]);
        var toleration = Assert.Single(gpu.Tolerations);
        Assert.Equal(("nvidia.com/gpu", "Exists", "NoSchedule"), (toleration.Key, toleration.OperatorProperty, toleration.Effect));
        Assert.Equal("kubernetes.io/hostname", Assert.Single(gpu.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution).PodAffinityTerm.TopologyKey);
        Assert.Null(cpu.RuntimeClassName);
        Assert.Null(cpu.NodeSelector);
        Assert.Null(cpu.Tolerations);
        Assert.Null(cpu.Affinity);
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Failures_follow_the_pod_failure_policy(string ciValuesFile)
    {
        var job = RenderedChart.Of(ciValuesFile).WorkerJob.Spec;
        var rules = job.PodFailurePolicy.Rules;

        Assert.Equal("Never", job.Template.Spec.RestartPolicy);
        Assert.Equal(3, job.BackoffLimitPerIndex);
        Assert.Equal(0, job.MaxFailedIndexes);
        // Rules apply in order: a disruption is ignored (and the pod replaced) whatever its exit code.
        Assert.Equal("Ignore", rules[0].Action);
        Assert.Equal(("DisruptionTarget", "True"), (Assert.Single(rules[0].OnPodConditions).Type, rules[0].OnPodConditions[0].Status));
        var configurationError = Assert.Single(rules, r => r.Action == "FailJob");
        Assert.Equal("worker", configurationError.OnExitCodes.ContainerName);
        Assert.Equal("In", configurationError.OnExitCodes.OperatorProperty);
        Assert.Contains(2, configurationError.OnExitCodes.Values);
        Assert.DoesNotContain(143, configurationError.OnExitCodes.Values);
    }

    [Fact]
    public void The_grace_period_is_the_value_so_a_stopped_worker_can_abandon_its_step()
    {
        Assert.Equal(60, RenderedChart.Of(null).WorkerJob.Spec.Template.Spec.TerminationGracePeriodSeconds);
        Assert.Equal(120, RenderedChart.Of("gpu-values.yaml").WorkerJob.Spec.Template.Spec.TerminationGracePeriodSeconds);
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void Every_container_sleeps_idle_threads_and_no_thread_count_travels_in_the_environment(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        foreach (var (owner, spec) in chart.PodSpecs)
        {
            foreach (var container in (spec.InitContainers ?? []).Concat(spec.Containers))
            {
                Assert.True(container.Env?.Any(e => e.Name == "OMP_WAIT_POLICY" && e.Value == "PASSIVE") == true,
                    $"{owner} container {container.Name} lacks OMP_WAIT_POLICY=PASSIVE");
            }
        }

        // The thread count is a run setting (threads; 0 = the container's CPU limit), not an environment side channel.
        foreach (var program in new[] { chart.WorkerContainer, chart.CoordinatorContainer })
        {
            Assert.DoesNotContain(program.Env, e => e.Name.StartsWith("DISTCLIP_THREADS", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Volcano_gang_schedules_the_workers()
    {
        var chart = RenderedChart.Of("volcano-values.yaml");
        var group = chart.Single<PodGroup>();
        var pod = chart.WorkerJob.Spec.Template;

        Assert.Equal("training", group.Spec.Queue);
        Assert.Equal("volcano", pod.Spec.SchedulerName);
        Assert.Equal(group.Metadata.Name, pod.Metadata.Annotations["scheduling.k8s.io/group-name"]);
        Assert.Empty(RenderedChart.Of(null).All<PodGroup>());
        Assert.Null(RenderedChart.Of(null).WorkerJob.Spec.Template.Spec.SchedulerName);
    }

    /// <summary>The value after <paramref name="name"/> in the container's arguments.</summary>
    internal static string Option(V1Container container, string name)
    {
        int at = container.Args.IndexOf(name);
        Assert.True(at >= 0 && at + 1 < container.Args.Count, $"{container.Name} has no {name} VALUE in its arguments: {string.Join(' ', container.Args)}");
        return container.Args[at + 1];
    }
}

using System.Text;
using DistClip.Config;
using k8s.Models;

namespace DistClip.Helm.Tests;

/// <summary>Checkpoints on a kept ReadWriteMany claim; the join secret only ever as a mounted file.</summary>
public sealed class StorageAndSecretTests
{
    public static TheoryData<string> CiValues => new(HelmProcess.CiValuesFiles());

    [Fact]
    public void Checkpoints_go_to_a_read_write_many_claim_kept_on_uninstall()
    {
        var chart = RenderedChart.Of("gpu-values.yaml");
        var claim = chart.Single<V1PersistentVolumeClaim>();

        Assert.Equal(["ReadWriteMany"], claim.Spec.AccessModes);
        Assert.Equal("keep", claim.Metadata.Annotations["helm.sh/resource-policy"]);
        Assert.Equal("nfs-client", claim.Spec.StorageClassName);
        Assert.Equal(new ResourceQuantity("200Gi"), claim.Spec.Resources.Requests["storage"]);
        AssertEveryProgramMounts(chart, claim.Metadata.Name, "/data");
        Assert.Equal("/data/checkpoints", chart.RunConfig.GetProperty("checkpoint_dir").GetString());
        Assert.Equal("/data/runs/run1", chart.RunConfig.GetProperty("run_dir").GetString());
    }

    [Fact]
    public void The_default_claim_uses_the_default_storage_class()
    {
        Assert.Null(RenderedChart.Of(null).Single<V1PersistentVolumeClaim>().Spec.StorageClassName);
    }

    [Fact]
    public void An_existing_claim_is_mounted_and_none_is_created()
    {
        var chart = RenderedChart.Of("existing-claim-values.yaml");

        Assert.Empty(chart.All<V1PersistentVolumeClaim>());
        AssertEveryProgramMounts(chart, "team-checkpoints", "/shared");
        Assert.Equal("/shared/checkpoints", chart.RunConfig.GetProperty("checkpoint_dir").GetString());
        Assert.Equal("laion-subset-v1", chart.RunConfig.GetProperty("run_id").GetString());
        Assert.Contains("if [ -f /shared/checkpoints/laion-subset-v1/latest ]; then set -- \"$@\" --resume latest; fi",
            Assert.Single(chart.CoordinatorContainer.Args));
        foreach (var container in new[] { chart.CoordinatorContainer, chart.WorkerContainer })
        {
            Assert.Contains(container.VolumeMounts, m => m.Name == "datasets" && m.MountPath == "/datasets");
        }
    }

    [Theory]
    [MemberData(nameof(CiValues))]
    public void The_secret_reaches_the_programs_only_as_a_mounted_file(string ciValuesFile)
    {
        var chart = RenderedChart.Of(ciValuesFile);
        string secretName = chart.All<V1Secret>().SingleOrDefault()?.Metadata.Name ?? "distclip-join";

        foreach (var (owner, spec) in chart.PodSpecs)
        {
            foreach (var container in (spec.InitContainers ?? []).Concat(spec.Containers))
            {
                Assert.Null(container.EnvFrom);
                foreach (var env in container.Env ?? [])
                {
                    Assert.True(env.ValueFrom?.SecretKeyRef is null, $"{owner} {container.Name} reads {env.Name} from a Secret");
                    Assert.NotEqual("DISTCLIP_SECRET", env.Name);
                }
            }
        }

        foreach (var (owner, spec, container) in new[]
        {
            ("coordinator", chart.Coordinator.Spec.Template.Spec, chart.CoordinatorContainer),
            ("worker", chart.WorkerJob.Spec.Template.Spec, chart.WorkerContainer),
        })
        {
            var volume = Assert.Single(spec.Volumes, v => v.Secret?.SecretName == secretName);
            var file = Assert.Single(volume.Secret.Items);
            Assert.Equal("secret", file.Path);
            var mount = Assert.Single(container.VolumeMounts, m => m.Name == volume.Name);
            Assert.True(mount.ReadOnlyProperty, $"the {owner}'s secret mount is writable");
            string secretFile = $"{mount.MountPath}/{file.Path}";
            string args = string.Join(' ', container.Args);
            Assert.Contains($"--secret-file {secretFile}", args);
        }
    }

    [Fact]
    public void A_generated_secret_is_random_and_appears_in_no_other_object()
    {
        var chart = RenderedChart.Of(null);
        var secret = chart.Single<V1Secret>();
        string value = Encoding.UTF8.GetString(secret.Data["secret"]);
        string base64 = Convert.ToBase64String(secret.Data["secret"]);

        Assert.Equal(64, value.Length);
        Assert.All(value, c => Assert.True(char.IsAsciiLetterOrDigit(c)));
        string others = chart.TextWithout(document => document.Contains("\nkind: Secret\n", StringComparison.Ordinal));
        Assert.DoesNotContain(value, others);
        Assert.DoesNotContain(base64, others);
        Assert.Contains(base64, chart.Text);
    }

    [Fact]
    public void An_existing_secret_is_used_and_none_is_created()
    {
        var chart = RenderedChart.Of("existing-claim-values.yaml");

        Assert.Empty(chart.All<V1Secret>());
        var item = Assert.Single(Assert.Single(chart.WorkerJob.Spec.Template.Spec.Volumes, v => v.Secret is not null).Secret.Items);
        Assert.Equal(("token", "secret"), (item.Key, item.Path));
    }

    private static void AssertEveryProgramMounts(RenderedChart chart, string claimName, string mountPath)
    {
        foreach (var (owner, spec, container) in new[]
        {
            ("coordinator", chart.Coordinator.Spec.Template.Spec, chart.CoordinatorContainer),
            ("worker", chart.WorkerJob.Spec.Template.Spec, chart.WorkerContainer),
        })
        {
            var volume = Assert.Single(spec.Volumes, v => v.PersistentVolumeClaim?.ClaimName == claimName);
            Assert.True(container.VolumeMounts.Any(m => m.Name == volume.Name && m.MountPath == mountPath),
                $"the {owner} does not mount {claimName} at {mountPath}");
        }
    }
}

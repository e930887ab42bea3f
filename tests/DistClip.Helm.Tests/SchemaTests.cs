using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using DistClip.Config;
using DistClip.Config.Settings;

namespace DistClip.Helm.Tests;

/// <summary>values.schema.json refuses what the chart would otherwise ignore; the run config speaks the coordinator's names.</summary>
public sealed class SchemaTests
{
    [Theory]
    [InlineData("workers.gpu=1", "/workers", "gpu")]
    [InlineData("config.global_bach=256", "/config", "global_bach")]
    [InlineData("persistance.size=1Gi", "", "persistance")]
    [InlineData("metrics.serviceMonitor.enable=true", "/metrics/serviceMonitor", "enable")]
    public void A_misspelled_value_is_refused_by_name(string set, string where, string misspelled)
    {
        var result = HelmProcess.Run(RenderedChart.TemplateArguments(HelmProcess.ChartDirectory, null, set));

        Assert.True(result.ExitCode != 0, $"helm template --set {set} succeeded: {result.Describe()}");
        Assert.Contains($"at '{where}': additional properties '{misspelled}' not allowed", result.Error);
        Assert.Equal("", result.Output);
    }

    [Theory]
    [InlineData("workers.gpus=-1")]
    [InlineData("config.workers=0")]
    [InlineData("coordinator.probe=http")]
    [InlineData("config.device=tpu")]
    [InlineData("config.dataset=synthetic:0")]
    [InlineData("config.dataset=synthetic:100000001")]
    [InlineData("config.dataset=synthetic:lots")]
    public void A_value_out_of_range_is_refused(string set)
    {
        var result = HelmProcess.Run(RenderedChart.TemplateArguments(HelmProcess.ChartDirectory, null, set));

        Assert.True(result.ExitCode != 0, $"helm template --set {set} succeeded: {result.Describe()}");
        Assert.Contains("values don't meet the specifications of the schema", result.Error);
    }

    [Theory]
    [InlineData("synthetic:1")]
    [InlineData("synthetic:131072")]
    [InlineData("synthetic:100000000")]
    public void A_synthetic_dataset_the_coordinator_accepts_passes_the_schema(string dataset)
    {
        var config = RenderedChart.Of(null, $"config.dataset={dataset}").RunConfig;

        Assert.Equal(dataset, config.GetProperty("dataset").GetString());
    }

    [Fact]
    public void The_config_schema_is_the_one_generated_from_the_coordinators_settings()
    {
        string path = Path.Combine(HelmProcess.ChartDirectory, "values.schema.json");
        var schema = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var committed = schema["properties"]!["config"]!;
        var generated = SettingDocs.HelmConfigSchema();
        if (!JsonNode.DeepEquals(committed, generated) && Environment.GetEnvironmentVariable("DISTCLIP_UPDATE_GENERATED") == "1")
        {
            schema["properties"]!["config"] = generated;
            File.WriteAllText(path, schema.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
            return;
        }

        Assert.True(JsonNode.DeepEquals(committed, generated),
            "helm/distclip/values.schema.json's config differs from the settings in src/DistClip.Config; regenerate it with " +
            "DISTCLIP_UPDATE_GENERATED=1 dotnet test tests/DistClip.Helm.Tests --filter The_config_schema_is_the_one_generated");
    }

    [Fact]
    public void Every_config_key_is_a_coordinator_setting_and_the_chart_owns_where_files_go()
    {
        using var schema = JsonDocument.Parse(File.ReadAllText(Path.Combine(HelmProcess.ChartDirectory, "values.schema.json")));
        var config = schema.RootElement.GetProperty("properties").GetProperty("config");
        var allowed = config.GetProperty("properties").EnumerateObject().Select(p => p.Name).ToList();
        var settings = SettingTable<RunConfig>.Settings.Select(s => s.JsonName).ToHashSet();

        Assert.False(config.GetProperty("additionalProperties").GetBoolean());
        Assert.Empty(allowed.Except(settings));
        string[] owned = ["checkpoint_dir", "run_dir", "run_id"];
        Assert.Empty(owned.Except(settings));
        Assert.Empty(owned.Intersect(allowed));
        Assert.Equal(owned.Order(StringComparer.Ordinal), RenderedChart.Of(null).RunConfig.EnumerateObject().Select(p => p.Name).Intersect(owned).Order(StringComparer.Ordinal));
    }
}

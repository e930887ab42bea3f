using System.Text.Json.Nodes;
using DistClip.Config;

namespace DistClip.Model.Tests;

public class ConfigTests
{
    [Fact]
    public void BuiltInsIncludeTheDocumentedModelsAndEachCarriesItsOwnName()
    {
        Assert.Subset(BuiltInNames(), new HashSet<string> { "clip-micro", "clip-tiny", "clip-tiny-bert", "vit-b-32", "rn50" });
        foreach (var name in ClipConfig.BuiltInNames)
        {
            Assert.Equal(name, ClipConfig.Load(name).Name);
        }
    }

    [Fact]
    public void ClipTinyReadsAsSpecified()
    {
        var config = ClipConfig.Load("clip-tiny");
        Assert.Equal(256, config.EmbedDim);
        Assert.Equal(new VisionConfig("vit", 28, 1, PatchSize: 7, Width: 256, Layers: 4, Heads: 4, MlpRatio: 4), config.Vision);
        Assert.Equal(new TextConfig("causal", 50257, 16, 256, 4, 4, 4, TokenInitStd: 1.0), config.Text);
        Assert.Equal(Math.Log(1 / 0.07), config.InitLogitScale, 12);
        Assert.Equal(Math.Log(100), config.MaxLogitScale, 12);
    }

    [Fact]
    public void CanonicalJsonParsesBackToAnEqualConfig()
    {
        foreach (var name in ClipConfig.BuiltInNames)
        {
            var config = ClipConfig.Load(name);
            Assert.Equal(config, ClipConfig.Parse(config.ToJson(), name));
        }
    }

    [Fact]
    public void AJsonFileLoadsByPath()
    {
        var path = Path.Combine(Path.GetTempPath(), $"distclip-model-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, Mutate(json => json["name"] = "my-model"));
        try
        {
            Assert.Equal("my-model", ClipConfig.Load(path).Name);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void AnUnknownBuiltInNameIsRefusedListingTheBuiltIns()
    {
        var e = Assert.Throws<ConfigException>(() => ClipConfig.Load("clip-huge"));
        Assert.Contains("clip-huge", e.Message);
        foreach (var name in ClipConfig.BuiltInNames)
        {
            Assert.Contains(name, e.Message);
        }
    }

    [Theory]
    [InlineData("vision.type", "'transformer' is not one of vit, resnet, mlp")]
    [InlineData("vision.patch_size", "7 does not divide image_size 30")]
    [InlineData("text.heads", "width 250 is not divisible by 4")]
    [InlineData("vision.layers", "must be positive, got 0")]
    [InlineData("text.vocab_size", "must be positive, got -5")]
    [InlineData("vision.patch_sise", "unknown key")]
    [InlineData("text.context_length", "required key is missing")]
    [InlineData("embed_dims", "unknown key")]
    [InlineData("vision.hidden_dim", "unknown key for vision type 'vit'")]
    [InlineData("text.mlp_ratio", "expected a number, got \"four\"")]
    [InlineData("text.activation", "'relu' is not one of gelu, quick_gelu")]
    [InlineData("max_logit_scale", "must be finite and at least init_logit_scale")]
    [InlineData("text.token_init_std", "must be a positive finite standard deviation, got 0")]
    public void InvalidConfigsAreRefusedByFieldName(string field, string detail)
    {
        var json = Mutate(Breakages[field]);
        var e = Assert.Throws<ConfigException>(() => ClipConfig.Parse(json, "broken.json"));
        Assert.Equal(field, e.Field);
        Assert.Contains(detail, e.Message);
        Assert.StartsWith($"broken.json: {field}: ", e.Message);
    }

    [Fact]
    public void ResNetConfigsAreCheckedForTheirOwnFields()
    {
        var resnet = TinyConfigs.ResNetAttention;
        AssertRefused("vision.resnet_layers", resnet with { ResNetLayers = [1, 1, 1] });
        AssertRefused("vision.resnet_layers[2]", resnet with { ResNetLayers = [1, 1, 0, 1] });
        AssertRefused("vision.image_size", resnet with { ImageSize = 48 });
        AssertRefused("vision.heads", resnet with { Heads = 3 });
        AssertRefused("vision.pool", resnet with { Pool = "max" });
        (resnet with { Heads = 3, Pool = VisionConfig.AveragePool }).Validate(); // heads do not matter without attention
    }

    [Fact]
    public void ResNetHeadsDefaultToOnePer64PooledChannels()
    {
        var json = Mutate(j => j["vision"] = new JsonObject
        {
            ["type"] = "resnet",
            ["image_size"] = 224,
            ["channels"] = 3,
            ["width"] = 64,
            ["resnet_layers"] = new JsonArray(3, 4, 6, 3),
        });
        var vision = ClipConfig.Parse(json, "test").Vision;
        Assert.Equal(32, vision.Heads);
        Assert.Equal(VisionConfig.AttentionPool, vision.Pool);
    }

    private static readonly Dictionary<string, Action<JsonObject>> Breakages = new()
    {
        ["vision.type"] = j => j["vision"]!["type"] = "transformer",
        ["vision.patch_size"] = j => j["vision"]!["image_size"] = 30,
        ["text.heads"] = j => j["text"]!["width"] = 250,
        ["vision.layers"] = j => j["vision"]!["layers"] = 0,
        ["text.vocab_size"] = j => j["text"]!["vocab_size"] = -5,
        ["vision.patch_sise"] = j => j["vision"]!["patch_sise"] = 7,
        ["text.context_length"] = j => j["text"]!.AsObject().Remove("context_length"),
        ["embed_dims"] = j => j["embed_dims"] = 256,
        ["vision.hidden_dim"] = j => j["vision"]!["hidden_dim"] = 512,
        ["text.mlp_ratio"] = j => j["text"]!["mlp_ratio"] = "four",
        ["text.activation"] = j => j["text"]!["activation"] = "relu",
        ["max_logit_scale"] = j => j["max_logit_scale"] = 1.0,
        ["text.token_init_std"] = j => j["text"]!["token_init_std"] = 0.0,
    };

    private static void AssertRefused(string field, VisionConfig vision)
    {
        var e = Assert.Throws<ConfigException>(() => TinyConfigs.With(vision).Validate());
        Assert.Equal(field, e.Field);
    }

    private static HashSet<string> BuiltInNames() => [.. ClipConfig.BuiltInNames];

    /// <summary>clip-tiny's JSON with one change applied.</summary>
    private static string Mutate(Action<JsonObject> change)
    {
        var json = JsonNode.Parse(ClipConfig.Load("clip-tiny").ToJson())!.AsObject();
        change(json);
        return json.ToJsonString();
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using DistClip.Config;

namespace DistClip.Config;

/// <summary>
/// <see cref="TrainOptions"/> as JSON with snake_case property names: how a checkpoint records the
/// configuration it was trained with (<c>config.json</c>), so that a resume can compare.
/// </summary>
public static class TrainOptionsJson
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public static string Serialize(TrainOptions options) => JsonSerializer.Serialize(options, Options);

    public static JsonElement ToElement(TrainOptions options) => JsonSerializer.SerializeToElement(options, Options);

    public static TrainOptions Deserialize(string json) =>
        JsonSerializer.Deserialize<TrainOptions>(json, Options) ?? throw new JsonException("no training options in the document");

    /// <summary>The configuration a run of these options over <paramref name="worldSize"/> ranks records in its checkpoints.</summary>
    public static JsonElement CheckpointConfig(TrainOptions options, int worldSize)
    {
        var node = JsonNode.Parse(Serialize(options))!.AsObject();
        node["world_size"] = worldSize;
        return JsonSerializer.SerializeToElement(node);
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace DistClip.Training;

/// <summary>
/// <see cref="TrainOptions"/> as JSON with snake_case names: how the coordinator hands the run's
/// settings to its workers and how a checkpoint records the configuration it was trained with.
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
}

using System.Security.Cryptography;
using DistClip.Config;
using DistClip.Model;
using static TorchSharp.torch;

namespace DistClip.Cli.Inference;

/// <summary>
/// Which model produced a set of embeddings. <see cref="ParametersSha256"/> (every parameter and
/// buffer, by name, in the model's dtype) decides sameness; the rest says where the model came from,
/// for messages and for reloading it (<see cref="Config"/> is the full <see cref="ClipConfig"/> JSON).
/// </summary>
internal sealed record ModelIdentity(
    string Name,
    string Source,
    string Location,
    string? RunId,
    long? Step,
    string ParametersSha256,
    int EmbedDim,
    string Tokenizer,
    string? Vocabulary,
    string Config)
{
    public const string FromCheckpoint = "checkpoint";
    public const string FromPretrained = "pretrained";

    /// <summary>One line for messages: <c>clip-micro (run R, step 100; parameters sha256 1a2b3c4d5e6f...)</c>.</summary>
    public string Describe()
    {
        string origin = Source == FromCheckpoint
            ? $"checkpoint {Location}" + (RunId is null ? "" : $", run {RunId}, step {Step}")
            : $"pretrained weights {Location}";
        return $"{Name} from {origin} (parameters sha256 {ParametersSha256[..12]}...)";
    }

    /// <summary>SHA-256 over every state-dict entry's name and bytes, in name order.</summary>
    public static string HashParameters(ClipModel model)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, tensor) in model.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            using var cpu = tensor.detach().cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }

        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }
}

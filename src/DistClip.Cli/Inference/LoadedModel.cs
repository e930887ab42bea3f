using DistClip.Data;
using DistClip.Model;
using static TorchSharp.torch;

namespace DistClip.Cli.Inference;

/// <summary>A model ready for inference (eval mode, on its device) with the tokenizer and image preprocessing it was trained with.</summary>
internal sealed class LoadedModel(ClipModel model, ITextTokenizer tokenizer, ImageSpec spec, Device device, ModelIdentity identity) : IDisposable
{
    public ClipModel Model { get; } = model;

    public ITextTokenizer Tokenizer { get; } = tokenizer;

    public ImageSpec Spec { get; } = spec;

    public Device Device { get; } = device;

    public ModelIdentity Identity { get; } = identity;

    /// <summary>Options the checkpoint was trained with (its state.json <c>config</c>), when it came from one.</summary>
    public System.Text.Json.JsonElement? TrainingConfig { get; init; }

    /// <summary>exp(t), clamped as in training: the factor CLIP puts on cosine similarities before a softmax.</summary>
    public double LogitScale => Math.Exp(Math.Min(Model.LogitScale.item<float>(), Model.Config.MaxLogitScale));

    public void Dispose() => Model.Dispose();
}

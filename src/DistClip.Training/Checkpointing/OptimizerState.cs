using System.Text;
using TorchSharp.Modules;

namespace DistClip.Training.Checkpointing;

/// <summary>
/// Optimizer state (step counts, moment estimates, per-group options) via TorchSharp's
/// <c>save_state_dict</c>/<c>load_state_dict</c>; with it a resumed step is bit-identical.
/// </summary>
/// <remarks>
/// Takes <see cref="OptimizerHelper"/>, not <c>torch.optim.Optimizer</c>: the abstract base has no
/// state-dict methods. Every built-in TorchSharp optimizer (AdamW, Adam, SGD, …) derives from it.
/// Load into an optimizer built over the same parameters in the same order and groups.
/// </remarks>
public static class OptimizerState
{
    public static void Save(OptimizerHelper optimizer, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(stream);
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        optimizer.save_state_dict(writer);
        writer.Flush();
    }

    public static void Load(OptimizerHelper optimizer, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        optimizer.load_state_dict(reader);
    }
}

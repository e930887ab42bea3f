using System.Text;
using TorchSharp;

namespace DistClip.Training.Checkpointing;

/// <summary>
/// Model weights in TorchSharp's own format (<c>Module.save</c>/<c>load</c>): every parameter and
/// buffer by name, raw tensor bytes, so a loaded model is bit-identical to the saved one.
/// </summary>
public static class ModelState
{
    /// <summary>Writes every parameter and buffer of <paramref name="module"/>; leaves the stream open.</summary>
    public static void Save(torch.nn.Module module, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(stream);
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        module.save(writer);
        writer.Flush();
    }

    /// <summary>
    /// Copies saved weights into <paramref name="module"/>'s existing tensors (their device is kept).
    /// Strict: a missing or unexpected name, or a shape that differs, throws.
    /// </summary>
    public static void Load(torch.nn.Module module, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        module.load(reader, strict: true);
    }
}

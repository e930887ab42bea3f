using DistClip.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training;

/// <summary>A loaded batch as the tensors the towers take; one conversion for training and evaluation.</summary>
public static class BatchTensors
{
    /// <summary>[N, C, H, W] float32 pixels, normalised as the batch's image spec says.</summary>
    public static Tensor Images(Batch batch, Device device) =>
        torch.tensor(batch.Images, [batch.Count, batch.Spec.Channels, batch.Spec.Size, batch.Spec.Size]).to(device);

    /// <summary>[N, L] int64 token ids and [N] int64 used lengths (end-of-text at length − 1).</summary>
    public static (Tensor Tokens, Tensor Lengths) Text(Batch batch, Device device) =>
        (torch.tensor(batch.Tokens, [batch.Count, batch.ContextLength]).to(device), torch.tensor(batch.Lengths).to(device));
}

using System.Runtime.InteropServices;
using DistClip.Collectives;
using DistClip.Training.Steps;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Distributed;

/// <summary>
/// The training step's collectives over a real <see cref="ICollectiveGroup"/> (gRPC between worker
/// processes, or in memory in tests). Blocking on the collective is intended: the step runs on one
/// thread inside one TorchSharp dispose scope, and a continuation on another thread would leave it.
/// </summary>
public sealed class CollectiveStepCollectives(ICollectiveGroup group) : IStepCollectives
{
    private float[] _gradients = [];

    public int Rank => group.Rank;

    public int WorldSize => group.WorldSize;

    public ICollectiveGroup Group => group;

    /// <summary>
    /// All-gathers both feature matrices in one collective. Local batch sizes may differ (a rank
    /// that skipped a corrupt sample has fewer rows), so the row counts are gathered first.
    /// </summary>
    public (Tensor Images, Tensor Texts) GatherFeatures(Tensor localImages, Tensor localTexts, CancellationToken ct)
    {
        if (WorldSize == 1)
        {
            return (localImages, localTexts);
        }

        int rows = (int)localImages.shape[0];
        int width = (int)localImages.shape[1];
        var counts = new float[WorldSize];
        group.AllGatherAsync(new float[] { rows }, counts, ct).GetAwaiter().GetResult();
        int[] rowsByRank = counts.Select(c => (int)c).ToArray();

        // [2·b, D]: this rank's images, then its texts, as plain floats for the wire.
        float[] local;
        using (var packed = torch.cat([localImages.detach(), localTexts.detach()], 0).cpu().contiguous())
        {
            local = MemoryMarshal.Cast<byte, float>(packed.bytes).ToArray();
        }

        var elementCounts = rowsByRank.Select(r => 2 * r * width).ToList();
        var all = new float[elementCounts.Sum()];
        group.AllGatherAsync(local, all, elementCounts, ct).GetAwaiter().GetResult();

        // Reassemble in rank order. This rank's rows are the local tensors themselves, so the
        // gradient reaches its towers; the other ranks' rows are constants.
        var images = new List<Tensor>(WorldSize);
        var texts = new List<Tensor>(WorldSize);
        int offset = 0;
        for (int r = 0; r < WorldSize; r++)
        {
            int n = rowsByRank[r] * width;
            if (r == Rank)
            {
                images.Add(localImages);
                texts.Add(localTexts);
            }
            else if (rowsByRank[r] > 0)
            {
                images.Add(torch.tensor(all.AsSpan(offset, n).ToArray(), [rowsByRank[r], width]).to(localImages.device));
                texts.Add(torch.tensor(all.AsSpan(offset + n, n).ToArray(), [rowsByRank[r], width]).to(localTexts.device));
            }

            offset += 2 * n;
        }

        return (torch.cat(images, 0), torch.cat(texts, 0)); // [B, D] each
    }

    /// <summary>
    /// One ring all-reduce (sum) over every gradient, flattened into a reused buffer. A parameter
    /// without a gradient contributes zeros and receives the sum, so every rank updates the same set.
    /// </summary>
    public void ReduceGradients(IReadOnlyList<Parameter> parameters, CancellationToken ct)
    {
        if (WorldSize == 1)
        {
            return;
        }

        long total = parameters.Sum(p => p.numel());
        if (_gradients.Length < total)
        {
            _gradients = new float[total];
        }

        var flat = _gradients.AsSpan(0, (int)total);
        int offset = 0;
        foreach (var p in parameters)
        {
            int n = (int)p.numel();
            using var grad = p.grad;
            if (grad is null)
            {
                flat.Slice(offset, n).Clear();
            }
            else
            {
                using var cpu = grad.cpu().contiguous();
                MemoryMarshal.Cast<byte, float>(cpu.bytes).CopyTo(flat.Slice(offset, n));
            }

            offset += n;
        }

        group.AllReduceSumAsync(_gradients.AsMemory(0, (int)total), ct).GetAwaiter().GetResult();

        offset = 0;
        using var noGrad = torch.no_grad();
        foreach (var p in parameters)
        {
            int n = (int)p.numel();
            using var summed = torch.tensor(_gradients.AsSpan(offset, n).ToArray(), p.shape).to(p.device);
            using var grad = p.grad;
            if (grad is null)
            {
                p.grad = summed.clone();
            }
            else
            {
                grad.copy_(summed);
            }

            offset += n;
        }
    }

    /// <summary>
    /// Every rank's parameters and buffers become <paramref name="root"/>'s, byte for byte, so all
    /// replicas start identical whatever each process's random state.
    /// </summary>
    public void BroadcastParameters(nn.Module model, int root, CancellationToken ct)
    {
        if (WorldSize == 1)
        {
            return;
        }

        var tensors = model.parameters().Select(p => (Tensor)p).Concat(model.buffers()).ToList();
        long total = tensors.Sum(t => t.numel() * t.element_size());
        var bytes = new byte[total];
        long offset = 0;
        foreach (var t in tensors)
        {
            using var cpu = t.detach().cpu().contiguous();
            cpu.bytes.CopyTo(bytes.AsSpan((int)offset));
            offset += cpu.bytes.Length;
        }

        group.BroadcastAsync(bytes.AsMemory(), root, ct).GetAwaiter().GetResult();

        offset = 0;
        using var noGrad = torch.no_grad();
        foreach (var t in tensors)
        {
            int n = (int)(t.numel() * t.element_size());
            using var received = torch.zeros(t.shape, t.dtype);
            bytes.AsSpan((int)offset, n).CopyTo(received.bytes);
            t.copy_(received.to(t.device));
            offset += n;
        }
    }
}

using System.Text;
using DistClip.Collectives;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training.Distributed;

/// <summary>
/// Makes every rank's parameters and buffers the root's, as raw bytes (so int64 BatchNorm counters
/// and bf16 tensors travel as they are), in chunks of whole tensors.
/// </summary>
internal static class ModelBroadcast
{
    /// <summary>64 MiB: bounds the staging buffer; a larger tensor travels alone.</summary>
    private const int ChunkBytes = 64 << 20;

    public static void Run(ICollectiveGroup group, nn.Module model, int root, CancellationToken ct)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var tensors = model.named_parameters().Select(p => (Name: p.name, Tensor: (Tensor)p.parameter))
            .Concat(model.named_buffers().Select(b => (Name: b.name, Tensor: b.buffer)))
            .ToList();
        CheckSameLayout(group, tensors.Select(t => Describe(t.Name, t.Tensor)).ToList(), root, ct);

        if (tensors.FirstOrDefault(t => Bytes(t.Tensor) > Array.MaxLength) is { Name: not null } huge)
        {
            throw new NotSupportedException($"{huge.Name} has {Bytes(huge.Tensor)} bytes; one broadcast carries at most {Array.MaxLength}.");
        }

        bool isRoot = group.Rank == root;
        var buffer = new byte[Math.Min(ChunkBytes, Math.Max(1, tensors.Sum(t => Bytes(t.Tensor))))];
        for (int first = 0; first < tensors.Count;)
        {
            // A chunk: whole tensors while they fit, at least one.
            long size = 0;
            int end = first;
            while (end < tensors.Count && (end == first || size + Bytes(tensors[end].Tensor) <= ChunkBytes))
            {
                size += Bytes(tensors[end].Tensor);
                end++;
            }

            if (size > buffer.Length)
            {
                buffer = new byte[size];
            }

            var chunk = buffer.AsMemory(0, (int)size);
            if (isRoot)
            {
                Walk(tensors, first, end, chunk, (t, bytes) => Read(t, bytes));
            }

            GroupStepCollectives.Wait(group.BroadcastAsync(chunk, root, ct));
            if (!isRoot)
            {
                Walk(tensors, first, end, chunk, (t, bytes) => Write(t, bytes));
            }

            first = end;
        }
    }

    /// <summary>
    /// The root's layout travels to every rank, and each rank's verdict back to all, so that a
    /// mismatch throws on every rank instead of hanging the ones that agreed.
    /// </summary>
    private static void CheckSameLayout(ICollectiveGroup group, List<string> lines, int root, CancellationToken ct)
    {
        byte[] mine = Encoding.UTF8.GetBytes(string.Join('\n', lines));
        var length = BitConverter.GetBytes(mine.Length);
        GroupStepCollectives.Wait(group.BroadcastAsync(length.AsMemory(), root, ct));
        var theirs = group.Rank == root ? mine : new byte[BitConverter.ToInt32(length)];
        GroupStepCollectives.Wait(group.BroadcastAsync(theirs.AsMemory(), root, ct));

        string? difference = FirstDifference(lines, Encoding.UTF8.GetString(theirs).Split('\n'), group.Rank, root);
        var verdicts = new float[group.WorldSize];
        GroupStepCollectives.Wait(group.AllGatherAsync(new float[] { difference is null ? 0f : 1f }, verdicts, ct));
        var differing = Enumerable.Range(0, group.WorldSize).Where(r => verdicts[r] != 0f).ToList();
        if (differing.Count > 0)
        {
            throw new InvalidOperationException(
                $"Cannot broadcast rank {root}'s weights: the model on rank(s) {string.Join(", ", differing)} has other tensors."
                + (difference is null ? string.Empty : $" Here: {difference}."));
        }
    }

    private static string? FirstDifference(List<string> mine, string[] theirs, int rank, int root)
    {
        if (mine.Count == 0 && theirs is [""])
        {
            return null;
        }

        for (int i = 0; i < Math.Max(mine.Count, theirs.Length); i++)
        {
            string here = i < mine.Count ? mine[i] : "(nothing)";
            string there = i < theirs.Length ? theirs[i] : "(nothing)";
            if (here != there)
            {
                return $"rank {rank} has '{here}' where rank {root} has '{there}'";
            }
        }

        return null;
    }

    private static string Describe(string name, Tensor t) => $"{name} {t.dtype} [{string.Join(", ", t.shape)}]";

    private static long Bytes(Tensor t) => t.numel() * t.element_size();

    private static void Walk(List<(string Name, Tensor Tensor)> tensors, int first, int end, Memory<byte> chunk, Action<Tensor, Span<byte>> action)
    {
        int offset = 0;
        for (int i = first; i < end; i++)
        {
            int size = (int)Bytes(tensors[i].Tensor);
            action(tensors[i].Tensor, chunk.Span.Slice(offset, size));
            offset += size;
        }
    }

    private static void Read(Tensor t, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return;
        }

        var host = t.device_type == DeviceType.CPU && t.is_contiguous() ? t : t.contiguous().cpu();
        host.bytes.CopyTo(destination);
    }

    private static void Write(Tensor t, Span<byte> source)
    {
        if (source.IsEmpty)
        {
            return;
        }

        if (t.device_type == DeviceType.CPU && t.is_contiguous())
        {
            // Straight into the tensor's memory: no autograd graph is alive at this point.
            source.CopyTo(t.bytes);
            return;
        }

        var host = torch.empty(t.shape, dtype: t.dtype);
        source.CopyTo(host.bytes);
        t.copy_(host);
    }
}

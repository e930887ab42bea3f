using DistClip.Collectives;
using static TorchSharp.torch;

namespace DistClip.Training.Distributed;

/// <summary>
/// Hands one rank's <see cref="ReplicaState"/> to every rank of a new generation over the data plane:
/// its length, then its bytes in chunks. Each receiver bounds the length before allocating (a few
/// times its own model's bytes) and checks the seal and the step the coordinator announced.
/// </summary>
internal static class ReplicaBroadcast
{
    /// <summary>64 MiB per broadcast: bounds what one collective carries.</summary>
    private const int ChunkBytes = 64 << 20;

    /// <summary>Slack for the state document (the curve grows with the run) beside the tensors.</summary>
    private const long DocumentSlack = 64L << 20;

    /// <param name="group">The new generation's group.</param>
    /// <param name="mine">The root's state; ignored elsewhere.</param>
    /// <param name="root">The rank that holds the state to hand over.</param>
    /// <param name="step">The step the coordinator announced for it.</param>
    /// <param name="model">This rank's model (bounds the length it accepts).</param>
    /// <exception cref="InvalidDataException">What arrived is too long, damaged, or of another step.</exception>
    public static ReplicaState Run(ICollectiveGroup group, ReplicaState? mine, int root, long step, nn.Module model, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(model);
        bool isRoot = group.Rank == root;
        var header = new byte[sizeof(long)];
        if (isRoot)
        {
            // A root without the announced state says so with -1: every rank then refuses alike.
            BitConverter.TryWriteBytes(header, mine is not null && mine.Step == step ? (long)mine.Bytes.Length : -1L);
        }

        GroupStepCollectives.Wait(group.BroadcastAsync(header.AsMemory(), root, ct));
        long length = BitConverter.ToInt64(header);
        if (length == -1)
        {
            throw new InvalidOperationException($"rank {root} was named to hand over its state at step {step} but holds {(isRoot ? mine is null ? "none" : $"step {mine.Step}" : "another")}");
        }

        long bound = Math.Min(Array.MaxLength, 4 * ModelBytes(model) + DocumentSlack);
        if (length <= 0 || length > bound)
        {
            // Every rank saw the same length, so every rank refuses alike (the root included).
            throw new InvalidDataException($"rank {root} offered a replica state of {length} bytes; at most {bound} are accepted for this model");
        }

        var bytes = isRoot ? mine!.Bytes : new byte[length];
        for (long at = 0; at < length; at += ChunkBytes)
        {
            int size = (int)Math.Min(ChunkBytes, length - at);
            GroupStepCollectives.Wait(group.BroadcastAsync(bytes.AsMemory((int)at, size), root, ct));
        }

        if (isRoot)
        {
            return mine!;
        }

        var received = ReplicaState.Open(bytes);
        return received.Step == step ? received
            : throw new InvalidDataException($"rank {root} handed over a state of step {received.Step}; the coordinator announced step {step}");
    }

    private static long ModelBytes(nn.Module model) =>
        model.parameters().Sum(p => p.numel() * p.element_size()) + model.buffers().Sum(b => b.numel() * b.element_size());
}

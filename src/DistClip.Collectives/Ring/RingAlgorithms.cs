namespace DistClip.Collectives.Ring;

/// <summary>
/// The ring algorithms, on bytes, over any <see cref="Transport.IRingTransport"/>. In each step a rank
/// sends one block to the right while it receives another from the left; N - 1 steps per phase.
/// </summary>
internal static class RingAlgorithms
{
    /// <summary>
    /// Sum of float32 data as reduce-scatter then all-gather. Block b's sum is formed along the ring
    /// starting at rank b, ((x_b + x_b+1) + x_b+2) + ..., and completed by rank b - 1 alone; the
    /// all-gather only copies it. So every rank ends with the same bits.
    /// </summary>
    public static async Task AllReduceSumAsync(RingOp op, Memory<byte> data)
    {
        int n = op.WorldSize;
        int r = op.Rank;
        if (n == 1)
        {
            return;
        }

        var blocks = Partition.EvenFloatBlocks(data.Length / sizeof(float), n);
        Memory<byte> Block(int b) => data.Slice((int)blocks[b].Offset, (int)blocks[b].Length);

        // Reduce-scatter: after step s, rank r holds the partial sum of s + 2 ranks for block r - s - 1.
        for (int s = 0; s < n - 1; s++)
        {
            await StepAsync(op, op.SendAsync(Block(Mod(r - s, n))), op.ReceiveAsync(Block(Mod(r - s - 1, n)), add: true))
                .ConfigureAwait(false);
        }

        // Rank r now owns the final sum of block r + 1; pass the owned blocks around unchanged.
        for (int s = 0; s < n - 1; s++)
        {
            await StepAsync(op, op.SendAsync(Block(Mod(r + 1 - s, n))), op.ReceiveAsync(Block(Mod(r - s, n)), add: false))
                .ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Ring all-gather: <paramref name="output"/> holds rank b's bytes at <c>blocks[b]</c>; rank r's own
    /// block is already in place. In step s rank r forwards block r - s and receives block r - s - 1.
    /// </summary>
    public static async Task AllGatherAsync(RingOp op, Memory<byte> output, IReadOnlyList<Partition.Block> blocks)
    {
        int n = op.WorldSize;
        int r = op.Rank;
        Memory<byte> Block(int b) => output.Slice((int)blocks[b].Offset, (int)blocks[b].Length);
        for (int s = 0; s < n - 1; s++)
        {
            await StepAsync(op, op.SendAsync(Block(Mod(r - s, n))), op.ReceiveAsync(Block(Mod(r - s - 1, n)), add: false))
                .ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Pipelined ring broadcast: the root sends, each rank forwards frame by frame, and the rank just
    /// left of the root only receives. Time is about bytes / bandwidth + (N - 2) frame latencies.
    /// </summary>
    public static Task BroadcastAsync(RingOp op, Memory<byte> data, int root)
    {
        int n = op.WorldSize;
        int position = Mod(op.Rank - root, n);
        if (n == 1)
        {
            return Task.CompletedTask;
        }

        if (position == 0)
        {
            return op.SendAsync(data);
        }

        return position == n - 1 ? op.ReceiveAsync(data, add: false) : op.ReceiveAndForwardAsync(data);
    }

    /// <summary>
    /// Awaits a step's send and receive. If one fails, the other is cancelled through the group's
    /// abort and awaited too, so nothing still touches the caller's buffers when this throws.
    /// </summary>
    private static async Task StepAsync(RingOp op, Task send, Task receive)
    {
        var first = await Task.WhenAny(send, receive).ConfigureAwait(false);
        var second = first == send ? receive : send;
        if (!first.IsCompletedSuccessfully)
        {
            op.AbortStep();
            try
            {
                await second.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The first failure is the one to report.
            }

            await first.ConfigureAwait(false);
        }

        await second.ConfigureAwait(false);
    }

    private static int Mod(int value, int n) => ((value % n) + n) % n;
}

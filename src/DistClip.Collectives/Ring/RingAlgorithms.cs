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
    public static Task AllReduceSumAsync(RingOp op, Memory<byte> data)
    {
        int n = op.WorldSize;
        int r = op.Rank;
        if (n == 1)
        {
            return Task.CompletedTask;
        }

        var blocks = Partition.EvenFloatBlocks(data.Length / sizeof(float), n);
        Memory<byte> Block(int b) => data.Slice((int)blocks[b].Offset, (int)blocks[b].Length);

        // Steps 0 .. n-2 reduce-scatter: send block r - s, add block r - s - 1 into ours. Rank r then
        // owns the final sum of block r + 1. Steps n-1 .. 2n-3 all-gather: pass owned blocks on unchanged.
        return PipelineAsync(
            op,
            steps: 2 * (n - 1),
            send: s => Block(s < n - 1 ? Mod(r - s, n) : Mod(r + 1 - (s - (n - 1)), n)),
            receive: s => Block(s < n - 1 ? Mod(r - s - 1, n) : Mod(r - (s - (n - 1)), n)),
            add: s => s < n - 1);
    }

    /// <summary>
    /// Ring all-gather: <paramref name="output"/> holds rank b's bytes at <c>blocks[b]</c>; rank r's own
    /// block is already in place. In step s rank r forwards block r - s and receives block r - s - 1.
    /// </summary>
    public static Task AllGatherAsync(RingOp op, Memory<byte> output, IReadOnlyList<Partition.Block> blocks)
    {
        int n = op.WorldSize;
        int r = op.Rank;
        Memory<byte> Block(int b) => output.Slice((int)blocks[b].Offset, (int)blocks[b].Length);
        return PipelineAsync(op, n - 1, s => Block(Mod(r - s, n)), s => Block(Mod(r - s - 1, n)), _ => false);
    }

    /// <summary>
    /// Ring reduce-scatter (sum) of float32 data: the all-reduce's first phase shifted by one, so that
    /// rank r ends owning block r. In step s rank r sends block r - s - 1 and adds block r - s - 2 into
    /// its own copy; block b's sum is formed along the ring starting at rank b + 1, in that one order,
    /// so its bits are the same run to run. The other blocks are left holding partial sums.
    /// </summary>
    public static Task ReduceScatterSumAsync(RingOp op, Memory<byte> data, IReadOnlyList<Partition.Block> blocks)
    {
        int n = op.WorldSize;
        int r = op.Rank;
        if (n == 1)
        {
            return Task.CompletedTask;
        }

        Memory<byte> Block(int b) => data.Slice((int)blocks[b].Offset, (int)blocks[b].Length);
        return PipelineAsync(op, n - 1, s => Block(Mod(r - s - 1, n)), s => Block(Mod(r - s - 2, n)), _ => true);
    }

    /// <summary>
    /// One step: <paramref name="send"/> goes to the right while the left neighbour's block lands in
    /// <paramref name="receive"/>. Sizes may differ from rank to rank, so each side first announces its
    /// element count and the receiver refuses a mismatch before applying anything.
    /// </summary>
    public static Task ShiftAsync(RingOp op, ReadOnlyMemory<byte> send, Memory<byte> receive)
    {
        if (op.WorldSize == 1)
        {
            send.CopyTo(receive);
            return Task.CompletedTask;
        }

        async Task SendAll()
        {
            await op.SendCountAsync(send.Length / sizeof(float)).ConfigureAwait(false);
            await op.SendAsync(send).ConfigureAwait(false);
        }

        async Task ReceiveAll()
        {
            await op.ExpectCountAsync(receive.Length / sizeof(float)).ConfigureAwait(false);
            await op.ReceiveAsync(receive, add: false).ConfigureAwait(false);
        }

        return BothAsync(op, SendAll(), ReceiveAll());
    }

    /// <summary>
    /// Runs the steps of a ring schedule with frame-level pipelining. In every schedule here the block
    /// sent in step s + 1 is the one received in step s, so each of its frames goes out as soon as
    /// that frame has landed, rather than after the whole step: the link never drains between steps.
    /// Step 0 sends the rank's own data, which is ready at once.
    /// </summary>
    private static async Task PipelineAsync(
        RingOp op, int steps, Func<int, Memory<byte>> send, Func<int, Memory<byte>> receive, Func<int, bool> add)
    {
        var landed = new SemaphoreSlim[steps];
        for (int s = 0; s < steps; s++)
        {
            landed[s] = new SemaphoreSlim(0);
        }

        async Task SendAll()
        {
            for (int s = 0; s < steps; s++)
            {
                await op.SendAsync(send(s), s == 0 ? null : landed[s - 1]).ConfigureAwait(false);
            }
        }

        async Task ReceiveAll()
        {
            for (int s = 0; s < steps; s++)
            {
                await op.ReceiveAsync(receive(s), add(s), landed[s]).ConfigureAwait(false);
            }
        }

        try
        {
            await BothAsync(op, SendAll(), ReceiveAll()).ConfigureAwait(false);
        }
        finally
        {
            foreach (var semaphore in landed)
            {
                semaphore.Dispose();
            }
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
    /// Awaits the sending and the receiving half. If one fails, the other is cancelled and awaited
    /// too, so nothing still touches the caller's buffers when this throws.
    /// </summary>
    private static async Task BothAsync(RingOp op, Task send, Task receive)
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

namespace DistClip.Training.Tests.Distributed;

/// <summary>What one rank's body returned, or threw.</summary>
internal sealed record RankOutcome<T>(int Rank, T? Result, Exception? Error)
{
    public T Value => Error is null ? Result! : throw new InvalidOperationException($"rank {Rank} failed: {Error.GetType().Name}: {Error.Message}", Error);
}

/// <summary>
/// N ranks as dedicated threads of this process: each blocks in its collectives the way a worker's
/// training thread does, so they cannot share the thread pool.
/// </summary>
internal static class RankThreads
{
    /// <summary>Runs <paramref name="body"/> for every rank and waits for all of them, at most <paramref name="deadline"/>.</summary>
    /// <exception cref="TimeoutException">A rank was still running at the deadline: something hangs.</exception>
    public static RankOutcome<T>[] Run<T>(int worldSize, TimeSpan deadline, Func<int, T> body)
    {
        var outcomes = new RankOutcome<T>[worldSize];
        var threads = new Thread[worldSize];
        for (int r = 0; r < worldSize; r++)
        {
            int rank = r;
            threads[r] = new Thread(() =>
            {
                try
                {
                    outcomes[rank] = new RankOutcome<T>(rank, body(rank), null);
                }
                catch (Exception e)
                {
                    outcomes[rank] = new RankOutcome<T>(rank, default, e);
                }
            })
            {
                IsBackground = true, // a hung rank must not keep the test host alive
                Name = $"rank {rank}",
            };
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        for (int r = 0; r < worldSize; r++)
        {
            var left = deadline - clock.Elapsed;
            if (!threads[r].Join(left > TimeSpan.Zero ? left : TimeSpan.Zero))
            {
                var hung = Enumerable.Range(0, worldSize).Where(i => threads[i].IsAlive);
                var ended = outcomes.Where(o => o is not null).Select(o =>
                    $"rank {o.Rank} {(o.Error is null ? "returned" : $"threw {o.Error.GetType().Name}: {o.Error.Message}")}");
                throw new TimeoutException(
                    $"rank(s) {string.Join(", ", hung)} still running after {deadline.TotalSeconds:F0} s; {string.Join("; ", ended)}");
            }
        }

        return outcomes;
    }
}

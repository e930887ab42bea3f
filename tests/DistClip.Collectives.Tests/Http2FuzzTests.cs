using DistClip.Collectives.Grpc.Http2;

namespace DistClip.Collectives.Tests;

/// <summary>Alone, so that memory measured is this test's (or an attack test's) and the machine's two cores are its own.</summary>
[CollectionDefinition(nameof(Http2FuzzTests), DisableParallelization = true)]
public sealed class Http2FuzzCollection;

/// <summary>
/// Seeded fuzzing of both direct HTTP/2 ends over loopback (see <see cref="Http2Fuzzer"/>); the
/// bench's <c>fuzz-http2</c> suite runs the same cases for longer.
/// </summary>
[Collection(nameof(Http2FuzzTests))]
public sealed class Http2FuzzTests
{
    [Fact]
    public async Task Four_hundred_mutated_exchanges_each_end_in_time_with_nothing_escaping_and_memory_bounded()
    {
        var unobserved = new List<Exception>();
        void Record(object? sender, UnobservedTaskExceptionEventArgs e)
        {
            lock (unobserved)
            {
                unobserved.Add(e.Exception);
            }
        }

        TaskScheduler.UnobservedTaskException += Record;
        Http2Fuzzer.Report report;
        try
        {
            report = await Http2Fuzzer.RunAsync(cases: 400, seed: 15, parallelism: 8, deadline: TimeSpan.FromSeconds(10), CancellationToken.None);
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= Record;
        }

        string outcomes = string.Join(", ", report.Outcomes.Select(o => $"{o.Key}: {o.Value}"));
        Assert.True(report.Problems.Count == 0, string.Join("\n", report.Problems) + "\n" + outcomes);
        Assert.DoesNotContain(unobserved, e => e.ToString().Contains("Http2", StringComparison.Ordinal));
        Assert.True(report.ManagedGrowthBytes < 32 << 20, $"managed memory grew by {report.ManagedGrowthBytes} bytes");
        Assert.True(report.WorkingSetGrowthBytes < 512L << 20, $"the working set grew by {report.WorkingSetGrowthBytes} bytes");
        // The mutations reach deep: some cases are served, and several distinct errors are provoked on each end.
        Assert.True(report.Outcomes.Keys.Count(k => k.StartsWith("server: ", StringComparison.Ordinal)) >= 4, outcomes);
        Assert.True(report.Outcomes.Keys.Count(k => k.StartsWith("client: ", StringComparison.Ordinal)) >= 2, outcomes);
        Assert.True(report.Elapsed < TimeSpan.FromSeconds(60), $"took {report.Elapsed}");
    }
}

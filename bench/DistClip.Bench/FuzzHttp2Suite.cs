using System.Globalization;
using System.Text.Json;
using DistClip.Collectives.Grpc.Http2;

namespace DistClip.Bench;

/// <summary>
/// The longer run of the direct HTTP/2 ends' fuzz test (issue #15): the same seeded cases as
/// <c>Http2FuzzTests</c> — a recorded valid exchange mutated and fed to the server end and the
/// client end over loopback — as many as asked. Passes when no case hangs past its deadline and
/// nothing escapes; prints outcomes by name and memory growth.
/// </summary>
public static class FuzzHttp2Suite
{
    /// <summary><c>fuzz-http2 [--cases N] [--seed S] [--parallel P] [--deadline-seconds D] [--json FILE]</c>.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, CancellationToken ct)
    {
        int cases = 10_000;
        int seed = 1;
        int parallel = 8;
        double deadlineSeconds = 10;
        string? json = null;
        for (int i = 0; i < args.Length; i += 2)
        {
            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--cases":
                    cases = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--seed":
                    seed = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--parallel":
                    parallel = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--deadline-seconds":
                    deadlineSeconds = double.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--json":
                    json = value;
                    break;
                default:
                    throw new ArgumentException($"unknown option {args[i]}; fuzz-http2 takes --cases, --seed, --parallel, --deadline-seconds, --json");
            }
        }

        if (cases < 1 || parallel < 1 || deadlineSeconds <= 0)
        {
            throw new ArgumentException("--cases and --parallel must be positive, and so must --deadline-seconds");
        }

        output.WriteLine($"fuzz-http2: {cases} cases, seed {seed}, {parallel} at a time, {deadlineSeconds} s per case");
        var report = await Http2Fuzzer.RunAsync(cases, seed, parallel, TimeSpan.FromSeconds(deadlineSeconds), ct);
        foreach (var (outcome, count) in report.Outcomes)
        {
            output.WriteLine($"  {outcome,-36} {count,8}");
        }

        foreach (var problem in report.Problems)
        {
            output.WriteLine($"  PROBLEM {problem}");
        }

        output.WriteLine(
            $"{report.Cases} cases in {report.Elapsed.TotalSeconds:F1} s; hung {report.Hung}, unexpected {report.Unexpected}; " +
            $"managed memory {report.ManagedGrowthBytes / 1024.0 / 1024:F1} MiB, working set {report.WorkingSetGrowthBytes / 1024.0 / 1024:F1} MiB more than at the start");
        if (json is not null)
        {
            await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new { suite = "fuzz-http2", seed, result = report }, new JsonSerializerOptions { WriteIndented = true }), ct);
        }

        return report.Problems.Count == 0 ? 0 : 1;
    }
}

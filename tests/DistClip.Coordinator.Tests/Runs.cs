using System.Text.Json;
using DistClip.Checkpoints;
using DistClip.Config;
using DistClip.Model;
using DistClip.Training;
using DistClip.Training.Checkpointing;
using TorchSharp;

namespace DistClip.Coordinator.Tests;

/// <summary>Small, fast run settings and readers of what a run leaves behind.</summary>
internal static class Runs
{
    /// <summary>clip-micro at global batch 32 with a short evaluation: seconds per run.</summary>
    public static string[] Quick(string dir, string name) =>
    [
        "launch", "--model", "clip-micro", "--global-batch", "32", "--seed", "11", "--warmup-steps", "2",
        "--eval-samples", "500", "--retrieval-samples", "100", "--log-every", "1",
        "--run-id", name, "--run-dir", Path.Combine(dir, name), "--checkpoint-dir", Path.Combine(dir, "checkpoints"),
        "--heartbeat-timeout", "10", "--collective-timeout", "20",
    ];

    public static JsonElement Summary(string dir, string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, name, "summary.json")));
        return doc.RootElement.Clone();
    }

    /// <summary>The parameters of a run's newest checkpoint, by name, as float arrays (the model the checkpoint records).</summary>
    public static Dictionary<string, float[]> FinalParameters(string dir, string name)
    {
        var checkpoint = new CheckpointStore(new CheckpointOptions(Path.Combine(dir, "checkpoints"), name)).ResolveLatest(CancellationToken.None)
            ?? throw new InvalidOperationException($"run {name} left no checkpoint");
        using var scope = torch.NewDisposeScope();
        var config = ClipConfig.Parse(CheckpointState.Of(checkpoint).ModelConfig!.Value.GetRawText(), $"{name}'s checkpoint");
        using var clip = new ClipModel(config);
        using (var stream = checkpoint.Open(CheckpointFiles.Model))
        {
            ModelState.Load(clip, stream);
        }

        return clip.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().cpu().data<float>().ToArray());
    }

    /// <summary>Largest |a − b| over each tensor, relative to that tensor's largest magnitude; the worst tensor.</summary>
    public static (string Name, double Error) WorstRelativeDifference(Dictionary<string, float[]> a, Dictionary<string, float[]> b)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        return a.Keys.Select(name =>
        {
            var x = a[name];
            var y = b[name];
            double scale = Math.Max(1e-12, x.Max(v => Math.Abs((double)v)));
            double worst = x.Zip(y, (p, q) => Math.Abs((double)p - q)).Max();
            return (name, worst / scale);
        }).MaxBy(t => t.Item2);
    }

    public static double[] LossCurve(JsonElement summary) =>
        summary.GetProperty("history").EnumerateArray().Select(h => h.GetProperty("loss").GetDouble()).ToArray();

    /// <summary>A run's membership for tests of what starts its workers (no coordinator behind it): run and checkpoint folders in <paramref name="dir"/>.</summary>
    public static Coordinator.Runs.Membership Membership(string dir, string runId, int workers, int maxRestarts = 3) =>
        new(new Coordinator.Runs.RunSettings
        {
            RunId = runId,
            Secret = "not-a-real-secret",
            Config = new RunConfig { Workers = workers, MaxRestarts = maxRestarts },
            RunDirectory = dir,
            CheckpointRoot = dir,
        }, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
}

using System.Runtime.InteropServices;
using DistClip.Collectives;
using DistClip.Collectives.InMemory;
using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Distributed;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Tests.Distributed;

/// <summary>What one rank (or the single process) saw over a short run.</summary>
/// <param name="FirstGradients">Every parameter's gradient after step 1's reduction (before the optimizer).</param>
/// <param name="FirstFeatures">Step 1's global [B, D] image then text features, flattened.</param>
/// <param name="GradientsInBuffer">Parameters whose gradient was a view of the reduction buffer at the end (-1: one process).</param>
internal sealed record RunRecord(
    List<double> Losses,
    List<int> Samples,
    Dictionary<string, float[]> FirstGradients,
    Dictionary<string, float[]> Parameters,
    float[] FirstFeatures,
    int GradientsInBuffer);

/// <summary>
/// Fashion-MNIST batches and runs of <c>clip-micro</c>: one process on the whole global batch, or N
/// ranks as threads over the in-memory transport, starting from the same weights.
/// </summary>
internal static class ClusterHarness
{
    public const int GlobalBatch = 32;
    public const int Seed = 11;

    /// <summary>Far beyond any test's deadline: a failure must reach every rank by propagation, not by timing out.</summary>
    public static readonly CollectiveOptions GroupOptions = new() { OperationTimeout = TimeSpan.FromSeconds(60) };

    private static readonly Lazy<ClipConfig> LazyConfig = new(() => ClipConfig.Load("clip-micro"));
    private static readonly Lazy<FashionMnistDataset> Train = new(() => FashionMnistDataset.Open(FashionMnistSplit.Train));
    private static readonly Lazy<ClipTokenizer> Tokenizer = new(ClipTokenizer.CreateR50k);
    private static readonly Dictionary<(IImageTextDataset, int Global, int World, int Rank), List<Batch>> Batches = [];

    public static ClipConfig Config => LazyConfig.Value;

    public static FashionMnistDataset Dataset => Train.Value;

    /// <summary>Same weights for the same seed: manual_seed is process-wide, so models are built one at a time.</summary>
    public static ClipModel NewModel(int seed, ClipConfig? config = null)
    {
        config ??= Config;
        // Process-wide too, and other tests of this assembly set their own: several rank threads share
        // the two cores, so each gets one intra-op thread. Every test builds its models here first.
        if (torch.get_num_threads() != 1)
        {
            torch.set_num_threads(1);
        }

        torch.manual_seed(seed);
        return new ClipModel(config);
    }

    /// <summary>Rank <paramref name="rank"/>'s first <paramref name="steps"/> local batches, as the loader makes them.</summary>
    public static IReadOnlyList<Batch> LocalBatches(int world, int rank, int steps, IImageTextDataset? dataset = null, int globalBatch = GlobalBatch)
    {
        dataset ??= Dataset;
        // Rank threads call this at once (FailureTests): a plain Dictionary written concurrently
        // corrupts itself and threw on some ranks, which then never reached their collectives.
        lock (Batches)
        {
            if (Batches.TryGetValue((dataset, globalBatch, world, rank), out var cached) && cached.Count >= steps)
            {
                return cached;
            }

            var sampler = new GlobalBatchSampler(dataset.Count, globalBatch, world, Seed);
            using var loader = new ClipDataLoader(dataset, ImageSpec.FashionMnist, Tokenizer.Value, Config.Text.ContextLength, sampler, rank, new SamplerCursor(0, 0));
            var batches = Enumerable.Range(0, steps).Select(_ => loader.Next(CancellationToken.None)).ToList();
            Batches[(dataset, globalBatch, world, rank)] = batches;
            return batches;
        }
    }

    /// <summary>One process, the whole global batch, <see cref="SingleProcessCollectives"/>.</summary>
    public static RunRecord RunSingle(
        OptimizerSettings settings, int steps, IImageTextDataset? dataset = null, StepSettings? step = null, int globalBatch = GlobalBatch,
        ClipConfig? config = null)
    {
        using var model = NewModel(Seed, ConfigFor(step, config));
        var batches = LocalBatches(1, 0, steps, dataset, globalBatch);
        return Train1(model, settings, steps, batches, collectives: null, step, CancellationToken.None);
    }

    /// <summary><paramref name="config"/> (default clip-micro), with the sigmoid loss's bias when <paramref name="step"/> trains with it.</summary>
    public static ClipConfig ConfigFor(StepSettings? step, ClipConfig? config = null) =>
        step?.Loss == LossKind.Siglip ? (config ?? Config).WithLogitBias() : config ?? Config;

    /// <summary>clip-micro with a two-block ViT for its image tower: a model whose image tower a distributed step reduces in segments.</summary>
    public static ClipConfig VitConfig => Config with
    {
        Vision = new VisionConfig(VisionConfig.Vit, ImageSize: 28, Channels: 1, PatchSize: 7, Width: 32, Layers: 2, Heads: 4),
    };

    /// <summary>
    /// N ranks on threads. Ranks other than 0 start from other seeds: <see cref="GroupStepCollectives.BroadcastParameters"/>
    /// must give them rank 0's weights (the single process's).
    /// </summary>
    public static RunRecord[] RunRanks(
        int world, OptimizerSettings settings, int steps, GroupStepOptions? options = null, IImageTextDataset? dataset = null,
        StepSettings? step = null, int globalBatch = GlobalBatch, ClipConfig? config = null)
    {
        var models = Enumerable.Range(0, world).Select(r => NewModel(r == 0 ? Seed : Seed + 100 + r, ConfigFor(step, config))).ToArray();
        var groups = InMemoryCollectives.CreateGroups(world, options: GroupOptions);
        var batches = Enumerable.Range(0, world).Select(r => LocalBatches(world, r, steps, dataset, globalBatch)).ToArray();
        try
        {
            var outcomes = RankThreads.Run(world, TimeSpan.FromSeconds(60), rank =>
            {
                using var collectives = new GroupStepCollectives(groups[rank], options);
                collectives.BroadcastParameters(models[rank], root: 0, CancellationToken.None);
                return Train1(models[rank], settings, steps, batches[rank], collectives, step, CancellationToken.None);
            });
            return [.. outcomes.Select(o => o.Value)];
        }
        finally
        {
            foreach (var group in groups)
            {
                group.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            foreach (var model in models)
            {
                model.Dispose();
            }
        }
    }

    private static RunRecord Train1(
        ClipModel model, OptimizerSettings settings, int steps, IReadOnlyList<Batch> batches, IStepCollectives? collectives, StepSettings? step, CancellationToken ct)
    {
        var recorder = new FeatureRecorder(collectives ?? SingleProcessCollectives.Instance);
        using var trainer = new ClipTrainer(model, settings, steps, torch.CPU, recorder, step);
        var losses = new List<double>();
        var samples = new List<int>();
        Dictionary<string, float[]>? firstGradients = null;
        for (int s = 0; s < steps; s++)
        {
            var metrics = trainer.Step(batches[s], 0, ct);
            losses.Add(metrics.Loss);
            samples.Add(metrics.Samples);
            firstGradients ??= Gradients(model);
        }

        int inBuffer = collectives is GroupStepCollectives real ? real.GradientsInBuffer(model.parameters()) : -1;
        return new RunRecord(losses, samples, firstGradients!, Parameters(model), recorder.First ?? [], inBuffer);
    }

    /// <summary>Ends a test's rank groups, then its models.</summary>
    public static async Task DisposeAllAsync(IEnumerable<ICollectiveGroup> groups, IEnumerable<IDisposable> models)
    {
        foreach (var group in groups)
        {
            await group.DisposeAsync();
        }

        foreach (var model in models)
        {
            model.Dispose();
        }
    }

    public static Dictionary<string, float[]> Parameters(nn.Module model) =>
        model.named_parameters().ToDictionary(p => p.name, p => Floats(p.parameter));

    public static Dictionary<string, float[]> Gradients(nn.Module model) =>
        model.named_parameters().ToDictionary(p => p.name, p =>
        {
            using var grad = p.parameter.grad ?? throw new InvalidOperationException($"{p.name} has no gradient");
            return Floats(grad);
        });

    public static float[] Floats(Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        return MemoryMarshal.Cast<byte, float>(t.detach().cpu().contiguous().bytes).ToArray();
    }

    /// <summary>max |actual − expected| / max |expected|: the error relative to the tensor's largest magnitude.</summary>
    public static double RelativeError(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = 0;
        double error = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            scale = Math.Max(scale, Math.Abs(expected[i]));
            error = Math.Max(error, Math.Abs((double)actual[i] - expected[i]));
        }

        return scale == 0 ? error : error / scale;
    }

    /// <summary>‖actual − expected‖₂ / ‖expected‖₂: the error of the tensor as a whole, which one element cannot dominate.</summary>
    public static double RelativeL2Error(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double norm = 0;
        double error = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            norm += (double)expected[i] * expected[i];
            error += ((double)actual[i] - expected[i]) * ((double)actual[i] - expected[i]);
        }

        return norm == 0 ? Math.Sqrt(error) : Math.Sqrt(error / norm);
    }

    /// <summary>The worst <see cref="RelativeL2Error"/> over named tensors, and where.</summary>
    public static (string Name, double Error) WorstRelativeL2Error(Dictionary<string, float[]> actual, Dictionary<string, float[]> expected)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        return expected.Select(kv => (kv.Key, RelativeL2Error(actual[kv.Key], kv.Value))).MaxBy(e => e.Item2);
    }

    /// <summary>The worst <see cref="RelativeError"/> over named tensors, and where.</summary>
    public static (string Name, double Error) WorstRelativeError(Dictionary<string, float[]> actual, Dictionary<string, float[]> expected)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        return expected.Select(kv => (kv.Key, RelativeError(actual[kv.Key], kv.Value))).MaxBy(e => e.Item2);
    }

    public static bool BitIdentical(float[] a, float[] b) =>
        MemoryMarshal.Cast<float, int>(a.AsSpan()).SequenceEqual(MemoryMarshal.Cast<float, int>(b.AsSpan()));

    /// <summary>Passes the step's collectives through, keeping step 1's global features ([B, 2D] image | text).</summary>
    private sealed class FeatureRecorder(IStepCollectives inner) : IStepCollectives
    {
        public float[]? First { get; private set; }

        public int Rank => inner.Rank;

        public int WorldSize => inner.WorldSize;

        public StepHeaders GatherRowCounts(long rows, long width, CollectiveWaits? previous, CancellationToken ct) => inner.GatherRowCounts(rows, width, previous, ct);

        public Tensor AllGatherRows(Tensor local, IReadOnlyList<int> rows, CancellationToken ct)
        {
            var all = inner.AllGatherRows(local, rows, ct);
            First ??= Floats(all);
            return all;
        }

        public Tensor ReduceScatterRows(Tensor full, IReadOnlyList<int> rows, CancellationToken ct) => inner.ReduceScatterRows(full, rows, ct);

        public Tensor ShiftRows(Tensor send, int receiveRows, CancellationToken ct) => inner.ShiftRows(send, receiveRows, ct);

        public void AllReduceSum(float[] values, CancellationToken ct) => inner.AllReduceSum(values, ct);

        public IGradientReduction BeginGradientReduction(
            IReadOnlyList<IReadOnlyList<Parameter>> stages, IReadOnlyList<RowSparseGradient>? rowSparse, CancellationToken ct) =>
            inner.BeginGradientReduction(stages, rowSparse, ct);
    }
}

using System.Diagnostics;
using System.Globalization;
using DistClip.Collectives;
using DistClip.Collectives.Grpc;
using DistClip.Config;
using DistClip.Data;
using DistClip.Model;
using DistClip.Training.Distributed;
using DistClip.Training.Steps;
using TorchSharp;
using TorchSharp.Modules;

namespace DistClip.Bench;

/// <summary>One row of the sparse-rows suite: one model and one token mix, the reduction timed dense and as rows.</summary>
public sealed record SparseRowsResult(
    string Model, string Tokens, long TableRows, int Width, int UnionRows, double GradientMiB, double DenseMiB, double SparseMiB,
    double DenseSeconds, double SparseSeconds);

/// <summary>
/// The <c>sparse-rows</c> suite: does sending only the token embedding's used rows pay? Two ranks in
/// this process, each with its own copy of the model, joined over real loopback sockets
/// (<see cref="GrpcCollectiveEndpoint"/>), reduce the whole model's gradients the way a training step
/// does (two stages, text first), once with the token table dense and once as rows, alternating,
/// median of <c>--rounds</c> (default 2) each after one untimed round. Token mixes: the captions of a Fashion-MNIST global
/// batch (<c>--batch</c>, split over the ranks), and a web-like batch of as many captions whose 77
/// tokens are spread over the whole vocabulary.
/// </summary>
public static class SparseRowsSuite
{
    private static readonly string[] Models = ["clip-tiny", "vit-b-32"];

    public static async Task<List<SparseRowsResult>> RunAsync(BenchArgs args, TextWriter output, CancellationToken ct)
    {
        int rounds = args.Rounds;
        var results = new List<SparseRowsResult>();
        await using var a = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = "bench" });
        await using var b = await GrpcCollectiveEndpoint.StartAsync(new GrpcTransportOptions { Secret = "bench" });
        Uri[] peers = [a.Address, b.Address];
        long generation = 0;
        var dataset = FashionMnistDataset.Open(FashionMnistSplit.Train);
        foreach (string name in Models)
        {
            var config = ClipConfig.Load(name);
            var fashion = FashionTokens(dataset, config, args.Batch);
            torch.manual_seed(1);
            using var m0 = new ClipModel(config);
            using var m1 = new ClipModel(config);
            ClipModel[] models = [m0, m1];
            var mixes = new List<(string Name, long[][] Rows)>
            {
                ("fashion-mnist captions", fashion),
                ("web-like, 77 tokens", WebTokens(args.Batch, 77, config.Text.VocabSize)),
            };
            foreach (var (mix, rows) in mixes)
            {
                // Stand-in rank tokens (a coordinator would issue them): each rank expects its left neighbour's.
                byte[][] tokens = [System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)];
                generation++;
                var groups = await Task.WhenAll(
                    a.JoinAsync(new CollectiveMembership(0, peers, generation, new RingTokens(tokens[0], tokens[1])), null, ct),
                    b.JoinAsync(new CollectiveMembership(1, peers, generation, new RingTokens(tokens[1], tokens[0])), null, ct));
                try
                {
                    var dense = new List<double>();
                    var sparse = new List<double>();
                    var collectives = groups.Select(g => new GroupStepCollectives(g)).ToArray();
                    try
                    {
                        for (int round = 0; round < rounds + 1; round++)
                        {
                            foreach (bool asRows in new[] { false, true })
                            {
                                double seconds = Reduce(models, collectives, rows, asRows);
                                if (round > 0) // the first round builds the buffers
                                {
                                    (asRows ? sparse : dense).Add(seconds);
                                }
                            }
                        }
                    }
                    finally
                    {
                        foreach (var c in collectives)
                        {
                            c.Dispose();
                        }
                    }

                    long tableRows = config.Text.VocabSize;
                    int width = config.Text.Width;
                    int union = rows.SelectMany(r => r).Distinct().Count();
                    double gradientMiB = m0.parameters().Sum(p => p.numel()) * 4.0 / (1 << 20);
                    double tableMiB = tableRows * width * 4.0 / (1 << 20);
                    double unionMiB = union < tableRows / 2 ? union * (double)width * 4 / (1 << 20) : tableMiB;
                    var result = new SparseRowsResult(name, mix, tableRows, width, union, gradientMiB, gradientMiB, gradientMiB - tableMiB + unionMiB,
                        Median(dense), Median(sparse));
                    results.Add(result);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{name}, {mix}: {union} of {tableRows} rows used; dense {result.DenseSeconds:F3} s, as rows {result.SparseSeconds:F3} s"));
                }
                finally
                {
                    foreach (var g in groups)
                    {
                        await g.DisposeAsync();
                    }
                }
            }
        }

        Print(results, output);
        return results;
    }

    /// <summary>Both ranks reduce every gradient (token table as rows or dense); returns rank 0's seconds.</summary>
    private static double Reduce(ClipModel[] models, GroupStepCollectives[] collectives, long[][] rows, bool asRows)
    {
        var seconds = new double[2];
        var threads = Enumerable.Range(0, 2).Select(rank => new Thread(() =>
        {
            using var scope = torch.NewDisposeScope();
            var model = models[rank];
            var (text, image) = model.TowerParameters();
            foreach (var p in model.parameters())
            {
                using var grad = p.grad;
                if (grad is null)
                {
                    p.grad = torch.zeros_like(p).DetachFromDisposeScope();
                }
                else
                {
                    grad.zero_();
                }
            }

            // The table's gradient lives only in its used rows, as the lookup's backward leaves it.
            using (var table = model.TokenEmbedding.grad!)
            using (var ids = torch.tensor(rows[rank]))
            using (var fill = 1e-3f.ToScalar())
            {
                table.index_fill_(0, ids, fill);
            }

            RowSparseGradient[]? sparse = asRows ? [new RowSparseGradient(model.TokenEmbedding, rows[rank])] : null;
            var clock = Stopwatch.StartNew();
            using var reduction = collectives[rank].BeginGradientReduction([text, image], sparse, CancellationToken.None);
            reduction.Release(0);
            reduction.Release(1);
            reduction.Complete();
            seconds[rank] = clock.Elapsed.TotalSeconds;
        })).ToArray();
        foreach (var t in threads)
        {
            t.Start();
        }

        foreach (var t in threads)
        {
            t.Join();
        }

        return seconds[0];
    }

    /// <summary>Per rank, the token ids of its half of a Fashion-MNIST global batch of <paramref name="batch"/> captions.</summary>
    private static long[][] FashionTokens(FashionMnistDataset dataset, ClipConfig config, int batch)
    {
        // The model's own vocabulary: OpenAI's for the 49,408-row table, GPT-2's r50k otherwise.
        ITextTokenizer tokenizer = config.Text.VocabSize == OpenAIClipTokenizer.ClipVocabSize ? OpenAIClipTokenizer.Shipped : ClipTokenizer.CreateR50k();
        int context = config.Text.ContextLength;
        var rng = new Random(1);
        var rows = new long[2][];
        for (int rank = 0; rank < 2; rank++)
        {
            rows[rank] = new long[batch / 2 * context];
            for (int i = 0; i < batch / 2; i++)
            {
                tokenizer.Encode(dataset.Caption(rng.Next(dataset.Count)), context, rows[rank].AsSpan(i * context, context));
            }
        }

        return rows;
    }

    /// <summary>Per rank, <paramref name="batch"/> / 2 captions of <paramref name="length"/> ids drawn from a Zipf-like spread over the vocabulary.</summary>
    private static long[][] WebTokens(int batch, int length, int vocab)
    {
        var rng = new Random(2);
        return [.. Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, batch / 2 * length)
            .Select(_ => (long)Math.Min(vocab - 1, Math.Floor(Math.Pow(vocab, rng.NextDouble())))).ToArray())];
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted[sorted.Count / 2];
    }

    private static void Print(List<SparseRowsResult> results, TextWriter output)
    {
        output.WriteLine($"{"model",-10} {"tokens",-24} {"rows used",14} {"dense MiB",10} {"rows MiB",9} {"dense s",8} {"rows s",8} {"speed-up",9}");
        foreach (var r in results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Model,-10} {r.Tokens,-24} {$"{r.UnionRows}/{r.TableRows}",14} {r.DenseMiB,10:F1} {r.SparseMiB,9:F1} {r.DenseSeconds,8:F3} {r.SparseSeconds,8:F3} {r.DenseSeconds / r.SparseSeconds,8:F2}x"));
        }

        output.WriteLine("Two ranks in one process over loopback gRPC; the whole model's gradient reduced as a step does (text stage, then image); median of the rounds.");
    }
}

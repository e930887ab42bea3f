using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DistClip.Bench;

/// <summary>One way of computing attention, timed forward and forward + backward.</summary>
public sealed record AttentionResult(string Path, bool Causal, long Batch, long Length, double ForwardSeconds, double ForwardBackwardSeconds)
{
    public long Heads { get; init; }
}

/// <summary>
/// The <c>attention</c> suite: the attention core of one clip-tiny block (q, k, v of [N, H, L, D])
/// through libtorch's scaled_dot_product_attention and through plain matmul + softmax (what the PyTorch
/// reference and PyTorch 1.13 do), alternating, on <c>--threads</c> (first value) threads, median of
/// <c>--steps</c> repetitions (docs/torchsharp.md says why the model keeps the fused kernel for now).
/// </summary>
public static class AttentionSuite
{
    public static List<AttentionResult> Run(BenchArgs args, TextWriter output)
    {
        torch.set_num_threads(args.Threads[0]);
        torch.manual_seed(1);
        var results = new List<AttentionResult>();
        // clip-tiny's text (16, causal) and image (17) towers; ViT-B/32's image (50) and text (77, causal) towers.
        foreach (var (causal, l, h) in new (bool, long, long)[] { (true, 16, 4), (false, 17, 4), (false, 50, 12), (true, 77, 8) })
        {
            long n = args.Batch / 2, d = 64;
            var times = new Dictionary<string, (List<double> F, List<double> FB)> { ["sdpa"] = ([], []), ["matmul"] = ([], []) };
            for (int rep = 0; rep < args.Steps + 2; rep++)
            {
                foreach (var path in times.Keys)
                {
                    using var scope = torch.NewDisposeScope();
                    var q = torch.randn(n, h, l, d).requires_grad_();
                    var k = torch.randn(n, h, l, d).requires_grad_();
                    var v = torch.randn(n, h, l, d).requires_grad_();
                    var grad = torch.randn(n, h, l, d);
                    var clock = Stopwatch.StartNew();
                    var y = path == "sdpa" ? F.scaled_dot_product_attention(q, k, v, is_casual: causal) : Manual(q, k, v, causal);
                    double forward = clock.Elapsed.TotalSeconds;
                    torch.autograd.backward([y], [grad]);
                    double both = clock.Elapsed.TotalSeconds;
                    if (rep >= 2)
                    {
                        times[path].F.Add(forward);
                        times[path].FB.Add(both);
                    }
                }
            }

            foreach (var (path, (f, fb)) in times)
            {
                results.Add(new AttentionResult(path, causal, n, l, Median(f), Median(fb)) { Heads = h });
            }
        }

        output.WriteLine($"{"path",-8} {"causal",6} {"N",5} {"H",3} {"L",4} {"forward ms",11} {"fwd+bwd ms",11}");
        foreach (var r in results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Path,-8} {r.Causal,6} {r.Batch,5} {r.Heads,3} {r.Length,4} {r.ForwardSeconds * 1e3,11:F2} {r.ForwardBackwardSeconds * 1e3,11:F2}"));
        }

        return results;
    }

    private static Tensor Manual(Tensor q, Tensor k, Tensor v, bool causal)
    {
        long l = q.shape[2];
        using var scale = Math.Pow(q.shape[3], -0.5).ToScalar();
        var scores = q.matmul(k.transpose(-2, -1)).mul(scale);
        if (causal)
        {
            scores = scores.masked_fill(torch.ones(l, l, dtype: ScalarType.Bool).triu_(1), DistClip.Model.Scalars.NegativeInfinity);
        }

        return scores.softmax(-1).matmul(v);
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}

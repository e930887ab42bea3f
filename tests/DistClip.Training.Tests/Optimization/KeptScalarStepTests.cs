using DistClip.Training.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using FusedAdamW = DistClip.Training.Optimization.Fused.AdamW;
using OurSgd = DistClip.Training.Optimization.SGD;

namespace DistClip.Training.Tests.Optimization;

/// <summary>
/// The optimizer steps written out with every Scalar kept alive through its libtorch call (DC0001):
/// the fused AdamW's per-tensor path and our SGD, against TorchSharp's own steps, bit for bit.
/// </summary>
public sealed class KeptScalarStepTests
{
    private const int Steps = 5;

    [Theory]
    [InlineData(false, false)] // float64: not the fused kernel's, so the per-tensor step
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void The_per_tensor_AdamW_step_equals_TorchSharps_bit_for_bit(bool amsgrad, bool maximize)
    {
        var (ours, theirs) = (Parameters(), Parameters());
        AdamW.ParamGroup[] Groups(Parameter[] ps) =>
        [
            new([ps[0]], new AdamW.Options { LearningRate = 1e-2, weight_decay = 0.2, beta1 = 0.9, beta2 = 0.98, eps = 1e-6, amsgrad = amsgrad, maximize = maximize }),
            new([ps[1]], new AdamW.Options { LearningRate = 1e-2, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.98, eps = 1e-6, amsgrad = amsgrad, maximize = maximize }),
        ];
        using var fused = new FusedAdamW(Groups(ours), 1e-2, 0.9, 0.98, 1e-6, 0.2);
        using var reference = optim.AdamW(Groups(theirs), 1e-2, 0.9, 0.98, 1e-6, 0.2, amsgrad, maximize);

        Train(fused, ours, reference, theirs);

        Assert.Equal(Steps, fused.TensorSteps);
        Assert.Equal(0, fused.FusedSteps);
        for (int i = 0; i < ours.Length; i++)
        {
            var (a, b) = ((AdamW.State)fused.state_dict().State[i], (AdamW.State)reference.state_dict().State[i]);
            Assert.Equal(b.step, a.step);
            AssertSameBits(b.exp_avg, a.exp_avg, $"exp_avg {i}");
            AssertSameBits(b.exp_avg_sq, a.exp_avg_sq, $"exp_avg_sq {i}");
            if (amsgrad)
            {
                AssertSameBits(b.max_exp_avg_sq, a.max_exp_avg_sq, $"max_exp_avg_sq {i}");
            }
        }
    }

    [Theory]
    [InlineData(0.0, 0.0, 0.0, false, false)] // what OptimizerFactory builds
    [InlineData(0.9, 0.0, 0.0, false, false)]
    [InlineData(0.9, 0.1, 0.01, false, false)]
    [InlineData(0.9, 0.0, 0.01, true, false)]
    [InlineData(0.5, 0.0, 0.0, false, true)]
    public void Our_SGD_step_equals_TorchSharps_bit_for_bit(double momentum, double dampening, double weightDecay, bool nesterov, bool maximize)
    {
        var (ours, theirs) = (Parameters(), Parameters());
        using var sgd = new OurSgd(ours, 0.05, momentum, dampening, weightDecay, nesterov, maximize);
        using var reference = optim.SGD(theirs, 0.05, momentum, dampening, weightDecay, nesterov, maximize);

        Train(sgd, ours, reference, theirs);

        for (int i = 0; i < ours.Length; i++)
        {
            var (a, b) = ((TorchSharp.Modules.SGD.State)sgd.state_dict().State[i], (TorchSharp.Modules.SGD.State)reference.state_dict().State[i]);
            Assert.Equal(b.momentum_buffer is null, a.momentum_buffer is null);
            if (b.momentum_buffer is not null)
            {
                AssertSameBits(b.momentum_buffer, a.momentum_buffer!, $"momentum buffer {i}");
            }
        }
    }

    [Fact]
    public void A_checkpoint_of_TorchSharps_SGD_loads_into_ours_and_training_goes_on_alike()
    {
        var (ours, theirs) = (Parameters(), Parameters());
        using var reference = optim.SGD(theirs, 0.05, momentum: 0.9);
        using var sgd = new OurSgd(ours, 0.05, momentum: 0.9);
        Train(sgd, ours, reference, theirs);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            reference.save_state_dict(writer);
        }

        stream.Position = 0;
        using var resumed = new OurSgd(ours, 0.05, momentum: 0.9);
        using (var reader = new BinaryReader(stream))
        {
            resumed.load_state_dict(reader);
        }

        Train(resumed, ours, reference, theirs);
    }

    /// <summary>Two parameters, float64 (not the fused AdamW's dtype), the same values in each call.</summary>
    private static Parameter[] Parameters()
    {
        torch.manual_seed(5);
        return [new Parameter(torch.randn(7, 5, dtype: ScalarType.Float64)), new Parameter(torch.randn(5, dtype: ScalarType.Float64))];
    }

    /// <summary><see cref="Steps"/> steps of both optimizers on the same gradients; the parameters must stay bit-identical.</summary>
    private static void Train(optim.Optimizer ours, Parameter[] mine, optim.Optimizer reference, Parameter[] theirs)
    {
        torch.manual_seed(9);
        for (int s = 0; s < Steps; s++)
        {
            for (int i = 0; i < mine.Length; i++)
            {
                using var g = torch.randn_like(mine[i]);
                mine[i].grad = g.clone();
                theirs[i].grad = g.clone();
            }

            ours.step();
            reference.step();
            for (int i = 0; i < mine.Length; i++)
            {
                AssertSameBits(theirs[i], mine[i], $"parameter {i} after step {s + 1}");
            }
        }
    }

    private static void AssertSameBits(Tensor expected, Tensor actual, string what) =>
        Assert.True(expected.equal(actual).all().item<bool>() && expected.dtype == actual.dtype, $"{what} differs from TorchSharp's");
}

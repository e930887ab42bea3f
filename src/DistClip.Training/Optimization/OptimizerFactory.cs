using DistClip.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Training.Optimization;

/// <summary>Builds the optimizer for a model from <see cref="OptimizerSettings"/>.</summary>
public static class OptimizerFactory
{
    /// <summary>
    /// AdamW with two parameter groups: weight decay only on tensors of rank ≥ 2 (matrices,
    /// convolution kernels, embeddings); biases, norms, the class token and the temperature are not
    /// decayed — decaying the temperature would pull it towards 0 for no reason. Plain SGD (no
    /// momentum, no decay) exists for equivalence tests, where Adam's normalisation would amplify
    /// summation-order noise.
    /// </summary>
    /// <param name="implementation">Which AdamW update runs; the fused one unless a test compares against TorchSharp's.</param>
    public static optim.Optimizer Create(nn.Module model, OptimizerSettings options, AdamWImplementation implementation = AdamWImplementation.Fused)
    {
        var parameters = model.parameters().Where(p => p.requires_grad).ToList();
        switch (options.Kind)
        {
            case OptimizerKind.Sgd:
                return new SGD(parameters, options.LearningRate);
            case OptimizerKind.AdamW:
                var decay = parameters.Where(p => p.dim() >= 2).ToList();
                var noDecay = parameters.Where(p => p.dim() < 2).ToList();
                var groups = new List<AdamW.ParamGroup>
                {
                    new(decay, new AdamW.Options { LearningRate = options.LearningRate, weight_decay = options.WeightDecay, beta1 = options.Beta1, beta2 = options.Beta2, eps = options.Eps }),
                    new(noDecay, new AdamW.Options { LearningRate = options.LearningRate, weight_decay = 0.0, beta1 = options.Beta1, beta2 = options.Beta2, eps = options.Eps }),
                };
                return implementation == AdamWImplementation.Fused
                    ? new Fused.AdamW(groups, options.LearningRate, options.Beta1, options.Beta2, options.Eps, options.WeightDecay)
                    : optim.AdamW(groups, options.LearningRate, options.Beta1, options.Beta2, options.Eps, options.WeightDecay);
            default:
                throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "unknown optimizer");
        }
    }

    /// <summary>Sets the learning rate of every parameter group.</summary>
    public static void SetLearningRate(optim.Optimizer optimizer, double rate)
    {
        foreach (var group in optimizer.ParamGroups)
        {
            group.LearningRate = rate;
        }
    }
}

/// <summary>
/// Which AdamW update <see cref="OptimizerFactory"/> builds. Both keep the same state and write the
/// same checkpoint bytes; they differ only in how the update is computed.
/// </summary>
public enum AdamWImplementation
{
    /// <summary>One pass over each tensor's memory (<see cref="Fused.AdamW"/>).</summary>
    Fused,

    /// <summary>TorchSharp's own step: nine libtorch ops per tensor. The reference the fused one is tested against.</summary>
    TorchSharp,
}

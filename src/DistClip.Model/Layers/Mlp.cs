using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Layers;

/// <summary>The transformer feed-forward: c_fc → activation → c_proj (OpenAI's names).</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear c_fc;
    private readonly Linear c_proj;
    private readonly Func<Tensor, Tensor> activation;

    public Mlp(int width, int hidden, string activation, double fcStd, double projStd)
        : base(nameof(Mlp))
    {
        c_fc = nn.Linear(width, hidden);
        c_proj = nn.Linear(hidden, width);
        this.activation = Activation.Of(activation);
        Init.Normal_(c_fc.weight, fcStd);
        Init.Normal_(c_proj.weight, projStd);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => c_proj.call(activation(c_fc.call(x)));
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DistClip.Model.Layers;

/// <summary>
/// A lookup table (state-dict name <c>weight</c>, like nn.Embedding). Ours rather than TorchSharp's:
/// in 0.107 an nn.Embedding built inside a dispose scope loses its weight when the scope closes.
/// </summary>
internal sealed class Embedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    public Embedding(int count, int width, double std)
        : base(nameof(Embedding))
    {
        weight = Init.NormalParameter(std, count, width);
        RegisterComponents();
    }

    /// <summary>The [count, width] table.</summary>
    public Parameter Weight => weight;

    /// <summary>
    /// Whether backward hands the table a row-sparse gradient (<see cref="SparseLookup"/>) instead of
    /// a dense [count, width] one. Only for a caller that keeps the table's gradient defined and dense
    /// before every backward: autograd then adds the rows into it in place; a table whose gradient is
    /// null would receive the sparse tensor itself.
    /// </summary>
    public bool SparseGradient { get; set; }

    /// <param name="ids">int64 of any shape S</param>
    /// <returns>[S..., W]</returns>
    public override Tensor forward(Tensor ids)
    {
        var flat = ids.flatten(); // [n]
        var rows = SparseGradient && weight.requires_grad && torch.is_grad_enabled()
            ? SparseLookup.apply(weight, new SparseLookup.Ids(flat))
            : weight.index_select(0, flat); // [n, W]
        return rows.view([.. ids.shape, weight.shape[1]]);
    }
}

/// <summary>
/// <c>table.index_select(0, ids)</c> whose backward returns the table's gradient as a sparse COO
/// tensor of the looked-up rows ([1, n] indices, [n, W] values) rather than index_select's dense
/// [count, W] zeros with the rows added in. Added to a dense gradient (autograd's accumulation does
/// <c>grad += sparse</c>, an index_add of the rows in the same order), it gives the same sums without
/// a table-sized temporary: for a 50,257-row table that temporary was 51 MB per step, above glibc's
/// largest mmap threshold, so every step mapped and zeroed it afresh (docs/torchsharp.md, "Memory").
/// </summary>
internal sealed class SparseLookup : autograd.SingleTensorFunction<SparseLookup>
{
    /// <summary>The ids, wrapped: a plain argument of apply, not a tensor input of the graph.</summary>
    public sealed record Ids(Tensor Flat);

    public override string Name => nameof(SparseLookup);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var table = (Tensor)vars[0];
        var ids = (Ids)vars[1];
        // The record, not its tensor: TorchSharp's save_data prints a warning to stdout for every
        // tensor it is given (one line in a worker's log per step). The ids are not an input of the
        // graph, so save_for_backward is not for them; the step's dispose scope keeps them alive.
        ctx.save_data("ids", ids);
        ctx.save_data("shape", table.shape);
        return table.index_select(0, ids.Flat); // [n, W]
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad)
    {
        var ids = ((Ids)ctx.get_data("ids")).Flat; // [n]
        var shape = (long[])ctx.get_data("shape"); // [count, W]
        var values = grad.reshape(-1, shape[1]); // [n, W]
        // One gradient per argument of apply: the table's, and none for the ids.
        return [torch.sparse_coo_tensor(ids.unsqueeze(0), values, shape), null!];
    }
}

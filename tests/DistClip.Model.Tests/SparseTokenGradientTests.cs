using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Model.Tests;

/// <summary>
/// <see cref="ClipModel.SparseTokenGradient"/>: the token table's gradient arrives as the rows the
/// batch used, added into the table's dense gradient in place, and equals index_select's dense one.
/// </summary>
public sealed class SparseTokenGradientTests
{
    [Fact]
    public void The_rows_added_into_a_zero_gradient_equal_the_dense_gradient_bit_for_bit_and_land_in_place()
    {
        using var model = Model(seed: 5);
        using var scope = NewDisposeScope();
        // Ids repeat within and across captions: their rows must sum every occurrence.
        var tokens = tensor(new long[] { 5, 7, 7, 299, 5, 1, 2, 7, 5, 5, 0, 3 }).view(3, 4);
        var lengths = tensor(new long[] { 4, 3, 4 });
        var upstream = randn(3, model.Config.EmbedDim);

        torch.autograd.backward([model.EncodeText(tokens, lengths)], [upstream]);
        var dense = model.TokenEmbedding.grad!.clone();
        var others = model.parameters().Where(p => !ReferenceEquals(p, model.TokenEmbedding) && p.grad is not null)
            .Select(p => p.grad!.clone()).ToList();

        model.zero_grad();
        using (no_grad())
        {
            model.TokenEmbedding.grad = zeros_like(model.TokenEmbedding);
        }

        var target = model.TokenEmbedding.grad!;
        model.SparseTokenGradient = true;
        torch.autograd.backward([model.EncodeText(tokens, lengths)], [upstream]);

        var sparse = model.TokenEmbedding.grad!;
        Assert.False(sparse.is_sparse);
        Assert.True(dense.Equals(target), "the rows were not added into the gradient that was there");
        Assert.True(dense.Equals(sparse), "the token table's gradient differs from index_select's");
        var again = model.parameters().Where(p => !ReferenceEquals(p, model.TokenEmbedding) && p.grad is not null).Select(p => p.grad!).ToList();
        Assert.All(others.Zip(again), pair => Assert.True(pair.First.Equals(pair.Second), "another parameter's gradient changed"));
    }

    [Fact]
    public void Rows_accumulate_onto_an_existing_gradient_like_two_dense_backward_passes()
    {
        using var model = Model(seed: 6);
        using var scope = NewDisposeScope();
        var (first, second) = (tensor(new long[] { 9, 8, 9, 4 }).view(1, 4), tensor(new long[] { 4, 9, 2, 2 }).view(1, 4));
        var lengths = tensor(new long[] { 4 });
        var upstream = randn(1, model.Config.EmbedDim);

        foreach (var tokens in new[] { first, second })
        {
            torch.autograd.backward([model.EncodeText(tokens, lengths)], [upstream]);
        }

        var dense = model.TokenEmbedding.grad!.clone();
        model.zero_grad();
        model.SparseTokenGradient = true;
        using (no_grad())
        {
            model.TokenEmbedding.grad = zeros_like(model.TokenEmbedding);
        }

        foreach (var tokens in new[] { first, second })
        {
            torch.autograd.backward([model.EncodeText(tokens, lengths)], [upstream]);
        }

        // The second pass adds each row into the sum so far rather than a pre-summed row: rounding may differ.
        Assert.True(dense.allclose(model.TokenEmbedding.grad!, rtol: 1e-6, atol: 1e-7));
        Assert.True(dense.count_nonzero().item<long>() > 0);
    }

    [Fact]
    public void With_no_gradient_to_add_into_the_table_receives_the_rows_themselves_which_is_why_the_trainer_keeps_one()
    {
        using var model = Model(seed: 8);
        using var scope = NewDisposeScope();
        var tokens = tensor(new long[] { 3, 3, 250, 4 }).view(1, 4);
        var lengths = tensor(new long[] { 4 });
        var upstream = randn(1, model.Config.EmbedDim);
        torch.autograd.backward([model.EncodeText(tokens, lengths)], [upstream]);
        var dense = model.TokenEmbedding.grad!.clone();
        model.zero_grad();
        model.TokenEmbedding.grad = null;

        model.SparseTokenGradient = true;
        torch.autograd.backward([model.EncodeText(tokens, lengths)], [upstream]);

        var rows = model.TokenEmbedding.grad!;
        Assert.True(rows.is_sparse); // the custom lookup's own gradient: 4 looked-up rows, not the table
        Assert.Equal(new long[] { 1, 4 }, rows.SparseIndices.shape);
        Assert.True(dense.Equals(rows.to_dense()));
    }

    [Fact]
    public void Off_by_default_the_table_gets_index_selects_dense_gradient()
    {
        using var model = Model(seed: 7);
        using var scope = NewDisposeScope();
        Assert.False(model.SparseTokenGradient);

        torch.autograd.backward([model.EncodeText(tensor(new long[] { 1, 2, 3 }).view(1, 3), tensor(new long[] { 3 }))], [ones(1, model.Config.EmbedDim)]);

        Assert.False(model.TokenEmbedding.grad!.is_sparse);
        Assert.Equal(model.TokenEmbedding.shape, model.TokenEmbedding.grad!.shape);
    }

    /// <summary>A tiny model whose token table has 300 rows, built under <paramref name="seed"/>.</summary>
    private static ClipModel Model(int seed)
    {
        manual_seed(seed);
        return new ClipModel(TinyConfigs.With(TinyConfigs.Vit, TinyConfigs.CausalText with { VocabSize = 300 }));
    }
}

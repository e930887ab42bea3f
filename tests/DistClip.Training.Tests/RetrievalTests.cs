using DistClip.Training.Evaluation;
using TorchSharp;

namespace DistClip.Training.Tests;

public class RetrievalTests
{
    [Fact]
    public void Recall_counts_rows_whose_diagonal_ranks_within_k()
    {
        using var scope = torch.NewDisposeScope();
        // Row 0: diagonal best (rank 0). Row 1: one entry higher (rank 1). Row 2: two higher (rank 2).
        var similarity = torch.tensor(new float[]
        {
            0.9f, 0.1f, 0.2f,
            0.8f, 0.5f, 0.1f,
            0.7f, 0.6f, 0.3f,
        }, [3, 3]);
        double[] recall = Retrieval.RecallAt(similarity, [1, 2, 3]);
        Assert.Equal(1.0 / 3, recall[0], 6);
        Assert.Equal(2.0 / 3, recall[1], 6);
        Assert.Equal(1.0, recall[2], 6);
    }
}

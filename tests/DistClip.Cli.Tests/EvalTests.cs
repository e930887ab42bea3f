using System.Text.Json;

namespace DistClip.Cli.Tests;

[Collection(TrainedRunCollection.Name)]
public sealed class EvalTests(TrainedRun run)
{
    [Fact]
    public void Eval_reports_exactly_what_the_training_run_reported_for_the_same_checkpoint()
    {
        // No sample counts given: eval takes the run's own (eval_samples 2000, retrieval_samples 500).
        var result = Cli.Ok("eval", "--checkpoint", run.FirstCheckpoint, "--dataset", "fashion-mnist", "--json");

        using var json = JsonDocument.Parse(result.Out);
        var root = json.RootElement;
        var expected = run.TrainingEvaluation;
        Assert.Equal(expected.ZeroShot.Top1, root.GetProperty("zero_shot_top1").GetDouble());
        Assert.Equal(expected.ZeroShot.Top5, root.GetProperty("zero_shot_top5").GetDouble());
        Assert.Equal(2000, root.GetProperty("zero_shot_samples").GetInt32());
        var retrieval = expected.Retrieval!;
        Assert.Equal(retrieval.ImageToTextR1, root.GetProperty("recall_at_1").GetProperty("image_to_text").GetDouble());
        Assert.Equal(retrieval.TextToImageR5, root.GetProperty("recall_at_5").GetProperty("text_to_image").GetDouble());
        Assert.Equal(retrieval.ImageToTextR10, root.GetProperty("recall_at_10").GetProperty("image_to_text").GetDouble());
        Assert.Equal(500, root.GetProperty("retrieval_pairs").GetInt32());
        Assert.True(expected.ZeroShot.Top1 >= 0.7, $"the fixture model should have learned (zero-shot top-1 {expected.ZeroShot.Top1:P1})");
    }

    [Fact]
    public void A_run_directory_means_its_latest_checkpoint_and_sample_counts_can_be_overridden()
    {
        var result = Cli.Ok("eval", "--checkpoint", run.RunDirectory, "--samples", "300", "--retrieval-samples", "0");

        Assert.Contains($"step {TrainedRun.SecondStep}", result.Out);
        Assert.Matches(@"zero-shot top-1 \d+\.\d\d %  top-5 \d+\.\d\d %  \(300 images\)", result.Out);
        Assert.DoesNotContain("retrieval", result.Out);
    }
}

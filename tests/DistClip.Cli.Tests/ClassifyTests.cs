using System.Text.Json;

namespace DistClip.Cli.Tests;

[Collection(TrainedRunCollection.Name)]
public sealed class ClassifyTests(TrainedRun run)
{
    [Fact]
    public void Each_image_gets_its_own_class_as_the_top_label()
    {
        string[] images = [run.FirstImageOf("Trouser"), run.FirstImageOf("Sneaker"), run.FirstImageOf("Bag")];

        var result = Cli.Ok(["classify", "--checkpoint", run.FirstCheckpoint, "--labels", "trouser, sneaker,bag", "--labels", "coat", "--json", .. images]);

        using var json = JsonDocument.Parse(result.Out);
        var rows = json.RootElement.GetProperty("images").EnumerateArray().ToList();
        Assert.Equal(3, rows.Count);
        foreach (var (row, expected) in rows.Zip(new[] { "trouser", "sneaker", "bag" }))
        {
            var predictions = row.GetProperty("predictions").EnumerateArray().ToList();
            Assert.Equal(4, predictions.Count);
            Assert.True(expected == predictions[0].GetProperty("label").GetString(), $"{row.GetProperty("image")}: expected {expected} first, got\n{result.Out}");
            double[] p = [.. predictions.Select(x => x.GetProperty("probability").GetDouble())];
            Assert.Equal(p.OrderDescending(), p);
            Assert.InRange(p.Sum(), 0.999, 1.001); // all four labels shown: the softmax sums to one
        }
    }

    [Fact]
    public void Labels_come_from_a_file_and_top_k_limits_the_table()
    {
        string file = Path.Combine(run.Root, "labels.txt");
        File.WriteAllLines(file, ["# Fashion-MNIST classes", "trouser", "", "sneaker", "bag", "coat", "dress"]);

        var result = Cli.Ok("classify", "--checkpoint", run.RunDirectory, "--labels-file", file, "--top-k", "2", run.FirstImageOf("Trouser"));

        string[] lines = result.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length); // the image, then two labels
        Assert.EndsWith("trouser", lines[1].Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_unreadable_image_is_reported_and_the_others_are_still_classified()
    {
        string broken = Path.Combine(run.ImagesDirectory, "broken-Unknown.png");

        var result = Cli.Run("classify", "--checkpoint", run.FirstCheckpoint, "--labels", "trouser,bag", broken, run.FirstImageOf("Bag"));

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("error: UndecodableImage", result.Out);
        Assert.Contains("1 of 2 images could not be read", result.Error);
        Assert.Matches(@"%\s+bag", result.Out);
    }

    [Fact]
    public void Without_labels_or_with_a_repeated_label_the_command_line_is_refused()
    {
        var none = Cli.Run("classify", "--checkpoint", run.FirstCheckpoint, run.FirstImageOf("Bag"));
        var twice = Cli.Run("classify", "--checkpoint", run.FirstCheckpoint, "--labels", "bag,Bag", run.FirstImageOf("Bag"));

        Assert.Equal(2, none.ExitCode);
        Assert.Contains("--labels", none.Error);
        Assert.Equal(2, twice.ExitCode);
        Assert.Contains("label 'bag' is given more than once", twice.Error);
    }
}

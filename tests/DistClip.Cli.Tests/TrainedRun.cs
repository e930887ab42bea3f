using DistClip.Checkpoints;
using DistClip.Config;
using DistClip.Data;
using DistClip.Training;
using DistClip.Training.Evaluation;
using DistClip.Training.Optimization;
using DistClip.Training.Steps;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DistClip.Cli.Tests;

/// <summary>
/// One clip-micro run on Fashion-MNIST, trained once for every test of the assembly (about 20 s on
/// two cores), through the trainer's own code: a checkpoint at <see cref="FirstStep"/>, the
/// evaluation the run itself reports there, a resumed second checkpoint at <see cref="SecondStep"/>
/// (different weights, same run), and a directory of test-split images as PNG files plus two broken ones.
/// </summary>
public sealed class TrainedRun : IDisposable
{
    public const int FirstStep = 150;
    public const int SecondStep = 160;
    public const int ImageCount = 200;
    public const int BrokenImages = 2;

    public TrainedRun()
    {
        Root = Directory.CreateTempSubdirectory("distclip-cli-tests-").FullName;
        RunDirectory = Path.Combine(Root, "checkpoints", "run-a");
        var options = new TrainOptions
        {
            Model = "clip-micro",
            Steps = SecondStep,
            StopAtStep = FirstStep,
            GlobalBatch = 256,
            Seed = 7,
            Threads = 2,
            EvalSamples = 2000,
            RetrievalSamples = 500,
            // The learning test's recipe: above 70% zero-shot top-1 in 150 steps.
            Optimizer = new OptimizerSettings { LearningRate = 2e-3, WarmupSteps = 20, WeightDecay = 0.1 },
        };
        var store = new CheckpointStore(new CheckpointOptions(Path.GetDirectoryName(RunDirectory)!, Path.GetFileName(RunDirectory)));
        using (var session = new TrainingSession(options, SingleProcessCollectives.Instance, NullLogger.Instance))
        {
            session.Train(null, CancellationToken.None);
            FirstCheckpoint = session.Save(store, CancellationToken.None).Directory;
            TrainingEvaluation = session.Evaluate();
        }

        using (var session = new TrainingSession(options with { StopAtStep = 0 }, SingleProcessCollectives.Instance, NullLogger.Instance))
        {
            session.Load(store.ResolveLatest(CancellationToken.None)!);
            session.Train(null, CancellationToken.None);
            SecondCheckpoint = session.Save(store, CancellationToken.None).Directory;
        }

        ImagesDirectory = Path.Combine(Root, "images");
        WriteTestImages(ImagesDirectory);
    }

    public string Root { get; }

    /// <summary>checkpoints/run-a: its <c>latest</c> names <see cref="SecondCheckpoint"/>.</summary>
    public string RunDirectory { get; }

    public string FirstCheckpoint { get; }

    public string SecondCheckpoint { get; }

    /// <summary>What the training session's own evaluation reported at <see cref="FirstStep"/>.</summary>
    public EvaluationResult TrainingEvaluation { get; }

    /// <summary>The first <see cref="ImageCount"/> test images as <c>NNNNN-Class.png</c>, and <see cref="BrokenImages"/> undecodable files.</summary>
    public string ImagesDirectory { get; }

    /// <summary>The first PNG of <see cref="ImagesDirectory"/> that shows class <paramref name="className"/>.</summary>
    public string FirstImageOf(string className) =>
        Directory.EnumerateFiles(ImagesDirectory, $"*-{className}.png").Order(StringComparer.Ordinal).First();

    /// <summary>The class a file of <see cref="ImagesDirectory"/> shows, from its name.</summary>
    public static string ClassOf(string path) => Path.GetFileNameWithoutExtension(path)[6..];

    public void Dispose() => Directory.Delete(Root, recursive: true);

    private static void WriteTestImages(string directory)
    {
        Directory.CreateDirectory(directory);
        var test = FashionMnistDataset.Open(FashionMnistSplit.Test);
        var spec = ImageSpec.FashionMnist;
        var pixels = new float[spec.PixelCount];
        var gray = new byte[spec.PixelCount];
        for (int i = 0; i < ImageCount; i++)
        {
            Assert.True(test.TryLoad(i, spec, pixels, out _, out int label));

            // Undo the normalisation to get the original 8-bit pixels back.
            for (int p = 0; p < gray.Length; p++)
            {
                gray[p] = (byte)Math.Clamp(Math.Round((pixels[p] * spec.Std[0] + spec.Mean[0]) * 255), 0, 255);
            }

            string name = FashionMnistDataset.Classes[label].Replace('/', '-').Replace(' ', '_');
            using var image = Image.LoadPixelData<L8>(gray, FashionMnistDataset.Side, FashionMnistDataset.Side);
            image.SaveAsPng(Path.Combine(directory, $"{i:D5}-{name}.png"));
        }

        File.WriteAllText(Path.Combine(directory, "broken-Unknown.png"), "this is not a PNG");
        File.WriteAllBytes(Path.Combine(directory, "empty-Unknown.jpg"), []);
        File.WriteAllText(Path.Combine(directory, "notes.txt"), "not an image extension: never looked at");
    }
}

[CollectionDefinition(Name)]
public sealed class TrainedRunCollection : ICollectionFixture<TrainedRun>
{
    public const string Name = "trained run";
}

using System.Diagnostics;
using System.Globalization;
using DistClip.Training.Steps;

namespace DistClip.Coordinator.Cli;

/// <summary>
/// Live progress: one line rewritten in place on a terminal; a plain line every
/// <c>logEvery</c> steps when the output is a file or a pipe.
/// </summary>
internal sealed class ProgressReporter(int totalSteps, int logEvery, TextWriter output, bool interactive) : IProgress<StepMetrics>, IDisposable
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _samples;
    private bool _lineOpen;

    public void Report(StepMetrics value)
    {
        _samples += value.Samples;
        double elapsed = _clock.Elapsed.TotalSeconds;
        double rate = _samples / Math.Max(elapsed, 1e-9);
        double eta = (totalSteps - value.Step) * (elapsed / value.Step);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"step {value.Step}/{totalSteps}  loss {value.Loss:F4}  lr {value.LearningRate:0.###e+0}  t {Math.Exp(value.LogitScale):F1}  {rate:F0} samples/s  ETA {TimeSpan.FromSeconds(Math.Round(eta)):c}");
        if (interactive)
        {
            output.Write("\r" + line.PadRight(100));
            _lineOpen = true;
        }
        else if (value.Step % logEvery == 0 || value.Step == totalSteps)
        {
            output.WriteLine(line);
        }
    }

    public void Finish()
    {
        if (_lineOpen)
        {
            output.WriteLine();
            _lineOpen = false;
        }
    }

    public void Dispose() => Finish();
}

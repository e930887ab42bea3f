using System.Diagnostics;
using System.Globalization;

namespace DistClip.Coordinator.Cli;

/// <summary>
/// Live progress: one line rewritten in place on a terminal; a plain line every
/// <c>logEvery</c> steps when the output is a file or a pipe.
/// </summary>
internal sealed class ProgressReporter(int totalSteps, int logEvery, TextWriter output, bool interactive) : IDisposable
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private long _samples;
    private long _firstStep = -1;
    private bool _lineOpen;

    public void Report(long step, long total, double loss, double learningRate, double logitScale, int samples)
    {
        lock (_lock)
        {
            if (_firstStep < 0)
            {
                _firstStep = step - 1; // a resumed run starts mid-way
                _clock.Restart();
            }

            _samples += samples;
            double elapsed = Math.Max(_clock.Elapsed.TotalSeconds, 1e-9);
            long done = step - _firstStep;
            // The clock starts at the first report, so a rate needs a second one.
            string rate = done > 1 ? string.Create(CultureInfo.InvariantCulture, $"{(_samples - samples) / elapsed:F0} samples/s") : "- samples/s";
            string eta = done > 1 ? TimeSpan.FromSeconds(Math.Round((total - step) * elapsed / (done - 1))).ToString("c", CultureInfo.InvariantCulture) : "-";
            string line = string.Create(CultureInfo.InvariantCulture,
                $"step {step}/{total}  loss {loss:F4}  lr {learningRate:0.###e+0}  t {Math.Exp(logitScale):F1}  {rate}  ETA {eta}");
            if (interactive)
            {
                output.Write("\r" + line.PadRight(100));
                _lineOpen = true;
            }
            else if (step % logEvery == 0 || step == totalSteps)
            {
                output.WriteLine(line);
            }
        }
    }

    /// <summary>A line that must not be overwritten (an abort, a restart).</summary>
    public void Note(string text)
    {
        lock (_lock)
        {
            Finish();
            output.WriteLine(text);
        }
    }

    public void Finish()
    {
        lock (_lock)
        {
            if (_lineOpen)
            {
                output.WriteLine();
                _lineOpen = false;
            }
        }
    }

    public void Dispose() => Finish();
}

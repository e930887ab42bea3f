namespace DistClip.Data;

/// <summary>
/// Resize-shorter-side, centre-crop and normalise, computed only for the cropped output: the
/// horizontal pass runs on each source row as it is pushed (so a large decoded image is never
/// copied to floats whole), the vertical pass runs once at <see cref="Write"/>.
/// Filtering follows PIL's bilinear resize: a triangle kernel whose support grows with the
/// shrink factor, which antialiases downscaling and is plain bilinear when enlarging.
/// </summary>
internal sealed class ImageResampler
{
    private readonly int _sourceWidth;
    private readonly int _size;
    private readonly int _channels;
    private readonly float[] _mean;
    private readonly float[] _std;
    private readonly Coefficients _horizontal;
    private readonly Coefficients _vertical;

    // Horizontal-pass output for the source rows the crop needs: [row - FirstRow][channel][outX].
    private readonly float[] _rows;

    // One source row converted to the output's channels, interleaved: [x][channel].
    private readonly float[] _scratch;

    public ImageResampler(int sourceWidth, int sourceHeight, ImageSpec spec)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sourceWidth, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sourceHeight, 1);
        spec.Validate();

        _sourceWidth = sourceWidth;
        _size = spec.Size;
        _channels = spec.Channels;
        _mean = spec.Mean;
        _std = spec.Std;

        // Shorter side becomes Size; the longer side keeps the aspect ratio, floored like torchvision.
        int resizedWidth, resizedHeight;
        if (sourceWidth <= sourceHeight)
        {
            resizedWidth = _size;
            resizedHeight = Math.Max(_size, (int)((long)_size * sourceHeight / sourceWidth));
        }
        else
        {
            resizedHeight = _size;
            resizedWidth = Math.Max(_size, (int)((long)_size * sourceWidth / sourceHeight));
        }

        // torchvision's centre crop rounds half offsets to even (Python round).
        int cropLeft = (int)Math.Round((resizedWidth - _size) / 2.0, MidpointRounding.ToEven);
        int cropTop = (int)Math.Round((resizedHeight - _size) / 2.0, MidpointRounding.ToEven);

        _horizontal = Coefficients.Compute(sourceWidth, resizedWidth, cropLeft, _size);
        _vertical = Coefficients.Compute(sourceHeight, resizedHeight, cropTop, _size);
        FirstRow = _vertical.FirstSource;
        EndRow = _vertical.EndSource;
        _rows = new float[(EndRow - FirstRow) * _channels * _size];
        _scratch = new float[sourceWidth * _channels];
    }

    /// <summary>First source row the output depends on.</summary>
    public int FirstRow { get; }

    /// <summary>One past the last source row the output depends on.</summary>
    public int EndRow { get; }

    /// <summary>Pushes source row <paramref name="y"/>: 8-bit samples, 1 (gray) or 3 (RGB) per pixel.</summary>
    public void AddRow(int y, ReadOnlySpan<byte> row, int sourceChannels)
    {
        if (y < FirstRow || y >= EndRow)
        {
            return;
        }

        ConvertRow(row, sourceChannels);
        Span<float> output = _rows.AsSpan((y - FirstRow) * _channels * _size, _channels * _size);
        for (int ox = 0; ox < _size; ox++)
        {
            int start = _horizontal.Start[ox];
            ReadOnlySpan<float> weights = _horizontal.WeightsOf(ox);
            for (int c = 0; c < _channels; c++)
            {
                float sum = 0f;
                for (int k = 0; k < weights.Length; k++)
                {
                    sum += weights[k] * _scratch[((start + k) * _channels) + c];
                }

                output[(c * _size) + ox] = sum;
            }
        }
    }

    /// <summary>Runs the vertical pass and writes normalised CHW floats.</summary>
    public void Write(Span<float> pixels)
    {
        int plane = _size * _size;
        if (pixels.Length < _channels * plane)
        {
            throw new ArgumentException($"Need {_channels * plane} floats, got {pixels.Length}.", nameof(pixels));
        }

        int rowStride = _channels * _size;
        for (int c = 0; c < _channels; c++)
        {
            // Folds /255, -mean and /std into one multiply-add per pixel.
            float scale = 1f / (255f * _std[c]);
            float shift = -_mean[c] / _std[c];
            for (int oy = 0; oy < _size; oy++)
            {
                int start = _vertical.Start[oy] - FirstRow;
                ReadOnlySpan<float> weights = _vertical.WeightsOf(oy);
                Span<float> outRow = pixels.Slice((c * plane) + (oy * _size), _size);
                for (int ox = 0; ox < _size; ox++)
                {
                    float sum = 0f;
                    for (int k = 0; k < weights.Length; k++)
                    {
                        sum += weights[k] * _rows[((start + k) * rowStride) + (c * _size) + ox];
                    }

                    outRow[ox] = (sum * scale) + shift;
                }
            }
        }
    }

    private void ConvertRow(ReadOnlySpan<byte> row, int sourceChannels)
    {
        int lo = _horizontal.FirstSource;
        int hi = _horizontal.EndSource;
        if (sourceChannels == 3 && _channels == 3)
        {
            for (int x = lo * 3; x < hi * 3; x++)
            {
                _scratch[x] = row[x];
            }
        }
        else if (sourceChannels == 3 && _channels == 1)
        {
            for (int x = lo; x < hi; x++)
            {
                _scratch[x] = Luma(row[3 * x], row[(3 * x) + 1], row[(3 * x) + 2]);
            }
        }
        else if (sourceChannels == 1)
        {
            for (int x = lo; x < hi; x++)
            {
                for (int c = 0; c < _channels; c++)
                {
                    _scratch[(x * _channels) + c] = row[x];
                }
            }
        }
        else
        {
            throw new ArgumentOutOfRangeException(nameof(sourceChannels), sourceChannels, "Source rows must have 1 or 3 channels.");
        }
    }

    /// <summary>ITU-R BT.601 luma, the weights PIL uses for "L" conversion.</summary>
    internal static float Luma(byte r, byte g, byte b) => (0.299f * r) + (0.587f * g) + (0.114f * b);

    /// <summary>Per-output-pixel source span and normalised weights along one axis.</summary>
    private sealed class Coefficients
    {
        private readonly float[] _weights;
        private readonly int _stride;

        private Coefficients(int[] start, int[] count, float[] weights, int stride)
        {
            Start = start;
            Count = count;
            _weights = weights;
            _stride = stride;
            FirstSource = start.Min();
            EndSource = start.Zip(count, (s, n) => s + n).Max();
        }

        public int[] Start { get; }

        public int[] Count { get; }

        public int FirstSource { get; }

        public int EndSource { get; }

        public ReadOnlySpan<float> WeightsOf(int output) => _weights.AsSpan(output * _stride, Count[output]);

        /// <summary>PIL's precompute_coeffs for the triangle filter, for outputs [offset, offset+length) of a resize inSize → outSize.</summary>
        public static Coefficients Compute(int inSize, int outSize, int offset, int length)
        {
            double scale = (double)inSize / outSize;
            double filterScale = Math.Max(scale, 1.0);
            double support = 1.0 * filterScale;
            int stride = (int)Math.Ceiling(support) * 2 + 1;
            var start = new int[length];
            var count = new int[length];
            var weights = new float[length * stride];
            var k = new double[stride];
            for (int i = 0; i < length; i++)
            {
                double center = (offset + i + 0.5) * scale;
                int min = Math.Max((int)(center - support + 0.5), 0);
                int max = Math.Min((int)(center + support + 0.5), inSize) - min;
                max = Math.Min(max, stride);
                double total = 0;
                for (int x = 0; x < max; x++)
                {
                    double w = Triangle((x + min - center + 0.5) / filterScale);
                    k[x] = w;
                    total += w;
                }

                for (int x = 0; x < max; x++)
                {
                    weights[(i * stride) + x] = (float)(total == 0 ? 0 : k[x] / total);
                }

                start[i] = min;
                count[i] = Math.Max(max, 0);
            }

            return new Coefficients(start, count, weights, stride);
        }

        private static double Triangle(double x)
        {
            x = Math.Abs(x);
            return x < 1.0 ? 1.0 - x : 0.0;
        }
    }
}

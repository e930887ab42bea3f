using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;

namespace DistClip.Data;

/// <summary>
/// Streams rank <c>rank</c>'s local batches, in cursor order, from <c>start</c> onwards, forever
/// (epochs roll over). A background producer thread decodes ahead of the trainer into a bounded
/// queue of <see cref="DataLoaderOptions.Prefetch"/> batches; time the trainer spends waiting shows
/// up as <see cref="LastWait"/>. An exception in the producer is rethrown from <see cref="Next"/>
/// after the batches produced before it.
/// </summary>
public sealed class ClipDataLoader : IDisposable
{
    private readonly IImageTextDataset _dataset;
    private readonly ImageSpec _spec;
    private readonly ITextTokenizer _tokenizer;
    private readonly int _contextLength;
    private readonly GlobalBatchSampler _sampler;
    private readonly int _rank;
    private readonly DataLoaderOptions _options;
    private readonly Channel<Batch> _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _producer;
    private readonly SamplerCursor _start;
    private volatile Exception? _failure;
    private bool _disposed;

    public ClipDataLoader(
        IImageTextDataset dataset,
        ImageSpec spec,
        ITextTokenizer tokenizer,
        int contextLength,
        GlobalBatchSampler sampler,
        int rank,
        SamplerCursor start,
        DataLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        spec.Validate();
        _options = options ?? new DataLoaderOptions();
        _options.Validate();
        if (sampler.DatasetCount != dataset.Count)
        {
            throw new ArgumentException(
                $"The sampler covers {sampler.DatasetCount} samples but dataset {dataset.Name} has {dataset.Count}.", nameof(sampler));
        }

        // Validates the cursor and rank up front, on the caller's thread.
        _ = sampler.LocalBatch(start, rank);

        _dataset = dataset;
        _spec = spec;
        _tokenizer = tokenizer;
        _contextLength = contextLength;
        _sampler = sampler;
        _rank = rank;
        _start = start;
        NextCursor = start;
        _queue = Channel.CreateBounded<Batch>(new BoundedChannelOptions(_options.PrefetchFor(sampler.LocalBatchSize, spec))
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });

        _producer = new Thread(Produce) { IsBackground = true, Name = $"DistClip data r{rank}" };
        _producer.Start();
    }

    /// <summary>How long the last <see cref="Next"/> waited for its batch (data-wait time).</summary>
    public TimeSpan LastWait { get; private set; }

    /// <summary>The cursor of the batch <see cref="Next"/> returns next: save it in checkpoints to resume here.</summary>
    public SamplerCursor NextCursor { get; private set; }

    /// <summary>Whether the producer thread has ended (after <see cref="Dispose"/> or a failure).</summary>
    internal bool ProducerStopped => !_producer.IsAlive;

    /// <summary>Returns the next batch in cursor order, blocking until it is ready.</summary>
    public Batch Next(CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long started = Stopwatch.GetTimestamp();
        Batch? batch;
        while (!_queue.Reader.TryRead(out batch))
        {
            bool more;
            try
            {
                more = _queue.Reader.WaitToReadAsync(ct).AsTask().GetAwaiter().GetResult();
            }
            catch (Exception) when (_failure is not null && !ct.IsCancellationRequested)
            {
                more = false;
            }

            if (!more)
            {
                if (_failure is { } failure)
                {
                    ExceptionDispatchInfo.Capture(failure).Throw();
                }

                throw new ObjectDisposedException(nameof(ClipDataLoader), "The loader was stopped.");
            }
        }

        LastWait = Stopwatch.GetElapsedTime(started);
        NextCursor = _sampler.Next(batch.Cursor);
        return batch;
    }

    /// <summary>Stops the producer (cancelling its wait or its decode between samples) and waits for it to end.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _stop.Cancel();

        // Joining guarantees no thread touches the dataset after Dispose returns.
        _producer.Join();
        _stop.Dispose();
    }

    /// <summary>
    /// Evaluation order: indices 0..min(Count, limit)-1 in batches of <paramref name="batchSize"/>,
    /// the last one possibly smaller; each batch's cursor is (0, batch number). Runs on the caller's thread.
    /// </summary>
    public static IEnumerable<Batch> Sequential(
        IImageTextDataset ds,
        ImageSpec spec,
        ITextTokenizer tok,
        int contextLength,
        int batchSize,
        int? limit = null,
        int decodeThreads = 1)
    {
        ArgumentNullException.ThrowIfNull(ds);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(tok);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(decodeThreads, 1);
        if (limit is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(limit), limit, "limit must not be negative.");
        }

        spec.Validate();
        return Iterate(ds, spec, tok, contextLength, batchSize, Math.Min(ds.Count, limit ?? int.MaxValue), decodeThreads);

        static IEnumerable<Batch> Iterate(IImageTextDataset ds, ImageSpec spec, ITextTokenizer tok, int contextLength, int batchSize, int total, int decodeThreads)
        {
            long number = 0;
            for (int first = 0; first < total; first += batchSize, number++)
            {
                int[] indices = Enumerable.Range(first, Math.Min(batchSize, total - first)).ToArray();
                yield return BatchBuilder.Build(ds, spec, tok, contextLength, indices, new SamplerCursor(0, number), decodeThreads, CancellationToken.None);
            }
        }
    }

    private void Produce()
    {
        CancellationToken token = _stop.Token;
        SamplerCursor cursor = _start;
        try
        {
            while (!token.IsCancellationRequested)
            {
                int[] indices = _sampler.LocalBatch(cursor, _rank);
                Batch batch = BatchBuilder.Build(_dataset, _spec, _tokenizer, _contextLength, indices, cursor, _options.DecodeThreads, token);

                // Blocks while Prefetch batches are already waiting; Dispose cancels the wait.
                _queue.Writer.WriteAsync(batch, token).AsTask().GetAwaiter().GetResult();
                cursor = _sampler.Next(cursor);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Dispose asked us to stop.
        }
        catch (Exception e)
        {
            _failure = e;
        }
        finally
        {
            _queue.Writer.TryComplete(_failure);
        }
    }
}

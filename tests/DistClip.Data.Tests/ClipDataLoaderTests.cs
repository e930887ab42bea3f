using System.Diagnostics;

namespace DistClip.Data.Tests;

public sealed class ClipDataLoaderTests
{
    private const int ContextLength = 8;
    private static readonly ImageSpec Spec = new(1, 3, [0f], [1f]);
    private static readonly ClipTokenizer Tokenizer = ClipTokenizer.CreateR50k();

    [Fact]
    public void Batches_hold_the_rank_slice_in_cursor_order_across_epochs()
    {
        var dataset = new ScriptedDataset(40);
        var sampler = new GlobalBatchSampler(40, 12, 3, seed: 2); // 3 batches per epoch, local batch 4
        using var loader = new ClipDataLoader(dataset, Spec, Tokenizer, ContextLength, sampler, rank: 2, SamplerCursor.Start);

        SamplerCursor expectedCursor = SamplerCursor.Start;
        for (int i = 0; i < 7; i++)
        {
            Assert.Equal(expectedCursor, loader.NextCursor);
            Batch batch = loader.Next(CancellationToken.None);

            Assert.Equal(expectedCursor, batch.Cursor);
            Assert.Equal(sampler.LocalBatch(expectedCursor, rank: 2), batch.Indices);
            Assert.Equal(4, batch.Count);
            Assert.Equal(4 * Spec.PixelCount, batch.Images.Length);
            Assert.Equal(4 * ContextLength, batch.Tokens.Length);
            Assert.True(loader.LastWait >= TimeSpan.Zero);
            for (int j = 0; j < batch.Count; j++)
            {
                Assert.Equal(batch.Indices[j], batch.Images[j * Spec.PixelCount]);
                Assert.Equal($"item number {batch.Indices[j]}", batch.Captions[j]);
                Assert.Equal(batch.Indices[j] % 10, batch.Labels[j]);
                Assert.Equal(Tokenizer.StartOfText, batch.Tokens[j * ContextLength]);
                Assert.Equal(Tokenizer.EndOfText, batch.Tokens[(j * ContextLength) + (int)batch.Lengths[j] - 1]);
            }

            expectedCursor = sampler.Next(expectedCursor);
        }

        Assert.Equal(new SamplerCursor(2, 1), expectedCursor);
    }

    [Fact]
    public void Decode_thread_count_does_not_change_any_batch()
    {
        var sampler = new GlobalBatchSampler(100, 12, 3, seed: 8);
        List<Batch> one = Take(new ScriptedDataset(100) { SkipAt = [5, 17, 60] }, sampler, new DataLoaderOptions(DecodeThreads: 1), SamplerCursor.Start, 20);
        List<Batch> three = Take(new ScriptedDataset(100) { SkipAt = [5, 17, 60] }, sampler, new DataLoaderOptions(DecodeThreads: 3, Prefetch: 2), SamplerCursor.Start, 20);

        Assert.Contains(one, b => b.Count < 4); // the skip-compaction path ran
        AssertSameBatches(one, three);
    }

    [Fact]
    public void A_restored_cursor_continues_identically()
    {
        var sampler = new GlobalBatchSampler(50, 8, 2, seed: 3);
        var dataset = new ScriptedDataset(50);
        SamplerCursor saved;
        var afterSave = new List<Batch>();
        using (var loader = new ClipDataLoader(dataset, Spec, Tokenizer, ContextLength, sampler, rank: 1, SamplerCursor.Start))
        {
            for (int i = 0; i < 5; i++)
            {
                loader.Next(CancellationToken.None);
            }

            saved = loader.NextCursor;
            for (int i = 0; i < 6; i++)
            {
                afterSave.Add(loader.Next(CancellationToken.None));
            }
        }

        var restoredSampler = new GlobalBatchSampler(50, 8, 2, seed: 3);
        List<Batch> resumed = Take(new ScriptedDataset(50), restoredSampler, null, saved, 6, rank: 1);

        Assert.Equal(new SamplerCursor(0, 5), saved);
        AssertSameBatches(afterSave, resumed);
    }

    [Fact]
    public void Skipped_samples_are_dropped_from_the_batch_and_counted()
    {
        var sampler = new GlobalBatchSampler(20, 4, 1, seed: 1);
        int skipped = sampler.GlobalBatch(0, 0)[1];
        var dataset = new ScriptedDataset(20) { SkipAt = [skipped] };
        using var loader = new ClipDataLoader(dataset, Spec, Tokenizer, ContextLength, sampler, 0, SamplerCursor.Start, new DataLoaderOptions(DecodeThreads: 2));

        Batch batch = loader.Next(CancellationToken.None);

        Assert.Equal(3, batch.Count);
        Assert.Equal(sampler.GlobalBatch(0, 0).Where(i => i != skipped), batch.Indices);
        Assert.Equal(3 * Spec.PixelCount, batch.Images.Length);
        Assert.Equal(3 * ContextLength, batch.Tokens.Length);
        Assert.Equal(batch.Indices[1], batch.Images[Spec.PixelCount]);
        Assert.True(dataset.Skips.Get(SkipReason.MissingImage) >= 1);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void An_exception_in_the_dataset_surfaces_from_Next_after_the_batches_before_it(int decodeThreads)
    {
        var sampler = new GlobalBatchSampler(40, 4, 1, seed: 4);
        int broken = sampler.GlobalBatch(0, 2)[1];
        var dataset = new ScriptedDataset(40) { ThrowAt = broken };
        using var loader = new ClipDataLoader(dataset, Spec, Tokenizer, ContextLength, sampler, 0, SamplerCursor.Start, new DataLoaderOptions(decodeThreads));

        Assert.Equal(new SamplerCursor(0, 0), loader.Next(CancellationToken.None).Cursor);
        Assert.Equal(new SamplerCursor(0, 1), loader.Next(CancellationToken.None).Cursor);
        InvalidOperationException error = Assert.Throws<InvalidOperationException>(() => loader.Next(CancellationToken.None));

        Assert.Equal($"broken sample {broken}", error.Message);
        Assert.Throws<InvalidOperationException>(() => loader.Next(CancellationToken.None));
    }

    [Fact]
    public void Dispose_stops_a_producer_blocked_on_a_full_queue_promptly()
    {
        var dataset = new ScriptedDataset(400);
        var sampler = new GlobalBatchSampler(400, 4, 1, seed: 0);
        var loader = new ClipDataLoader(dataset, Spec, Tokenizer, ContextLength, sampler, 0, SamplerCursor.Start, new DataLoaderOptions(Prefetch: 1));
        loader.Next(CancellationToken.None);

        var clock = Stopwatch.StartNew();
        loader.Dispose();
        clock.Stop();

        Assert.True(loader.ProducerStopped);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"Dispose took {clock.Elapsed}");
        Assert.True(dataset.Loads < 400, $"the producer ran ahead through {dataset.Loads} loads");
        Assert.Throws<ObjectDisposedException>(() => loader.Next(CancellationToken.None));
        loader.Dispose(); // idempotent
    }

    [Fact]
    public void Next_honours_its_cancellation_token_while_waiting_and_Dispose_ends_the_producer()
    {
        using var gate = new ManualResetEventSlim(false);
        var dataset = new ScriptedDataset(16) { Gate = gate };
        var sampler = new GlobalBatchSampler(16, 4, 1, seed: 0);
        var loader = new ClipDataLoader(dataset, Spec, Tokenizer, ContextLength, sampler, 0, SamplerCursor.Start);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        Assert.ThrowsAny<OperationCanceledException>(() => loader.Next(cancelled.Token));

        gate.Set();
        loader.Dispose();
        Assert.True(loader.ProducerStopped);
    }

    [Fact]
    public void Sampler_for_another_dataset_size_is_refused()
    {
        var sampler = new GlobalBatchSampler(50, 10, 1, seed: 0);

        Assert.Throws<ArgumentException>(() => new ClipDataLoader(new ScriptedDataset(60), Spec, Tokenizer, ContextLength, sampler, 0, SamplerCursor.Start));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipDataLoader(new ScriptedDataset(50), Spec, Tokenizer, ContextLength, sampler, 1, SamplerCursor.Start));
    }

    [Fact]
    public void Sequential_covers_every_index_once_in_order_with_a_final_partial_batch()
    {
        var dataset = new ScriptedDataset(10) { SkipAt = [3] };

        List<Batch> batches = ClipDataLoader.Sequential(dataset, Spec, Tokenizer, ContextLength, batchSize: 4).ToList();

        Assert.Equal([3, 4, 2], batches.Select(b => b.Count));
        Assert.Equal(Enumerable.Range(0, 10).Where(i => i != 3), batches.SelectMany(b => b.Indices));
        Assert.Equal([new SamplerCursor(0, 0), new SamplerCursor(0, 1), new SamplerCursor(0, 2)], batches.Select(b => b.Cursor));
        Assert.Equal(1, dataset.Skips.Get(SkipReason.MissingImage));
        Assert.Equal([0, 1, 2, 4, 5], ClipDataLoader.Sequential(dataset, Spec, Tokenizer, ContextLength, 4, limit: 6).SelectMany(b => b.Indices));
    }

    private static List<Batch> Take(ScriptedDataset dataset, GlobalBatchSampler sampler, DataLoaderOptions? options, SamplerCursor start, int count, int rank = 2)
    {
        using var loader = new ClipDataLoader(dataset, Spec, Tokenizer, ContextLength, sampler, rank, start, options);
        return Enumerable.Range(0, count).Select(_ => loader.Next(CancellationToken.None)).ToList();
    }

    private static void AssertSameBatches(List<Batch> expected, List<Batch> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Cursor, actual[i].Cursor);
            Assert.Equal(expected[i].Indices, actual[i].Indices);
            Assert.Equal(expected[i].Images, actual[i].Images);
            Assert.Equal(expected[i].Tokens, actual[i].Tokens);
            Assert.Equal(expected[i].Lengths, actual[i].Lengths);
            Assert.Equal(expected[i].Labels, actual[i].Labels);
            Assert.Equal(expected[i].Captions, actual[i].Captions);
        }
    }
}

public class PrefetchBoundTests
{
    [Theory]
    [InlineData(4, 128, 4)] // 28×28 at 128 a batch: 0.4 MiB each, all four
    [InlineData(4, 32_768, 2)] // 98 MiB a batch: two fit in 256 MiB
    [InlineData(4, 131_072, 1)] // 392 MiB a batch: never below one
    [InlineData(1, 128, 1)] // never above the setting
    public void Batches_waiting_ahead_hold_at_most_256_MiB_of_pixels_and_at_least_one_batch(int prefetch, int batchSize, int expected)
    {
        Assert.Equal(expected, new DataLoaderOptions(Prefetch: prefetch).PrefetchFor(batchSize, ImageSpec.FashionMnist));
    }
}

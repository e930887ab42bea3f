using SixLabors.ImageSharp.PixelFormats;

namespace DistClip.Data.Tests;

public sealed class CsvDatasetTests
{
    private static readonly ImageSpec Gray4 = new(1, 4, [0f], [1f]);

    [Fact]
    public void Quoted_fields_keep_commas_doubled_quotes_and_newlines()
    {
        using var dir = new TempDirectory();
        Directory.CreateDirectory(dir.File("img"));
        foreach (string name in new[] { "a", "b", "c" })
        {
            File.WriteAllBytes(dir.File($"img/{name}.png"), TestImages.SolidPng(5, 5, new Rgb24(10, 20, 30)));
        }

        File.WriteAllText(dir.File("data.csv"),
            "filepath,title,extra\r\n" +
            "img/a.png,\"a cat, sitting\",x\r\n" +
            "img/b.png,\"she said \"\"hi\"\"\",y\n" +
            "img/c.png,\"two\nlines\",z\n" +
            "\n" +
            "img/missing.png,a file that is not there,w\n" +
            "img/a.png,   ,blank caption\n");

        CsvDataset ds = CsvDataset.Open(dir.File("data.csv"), new CsvOptions());

        Assert.Equal(4, ds.Count);
        Assert.Equal(["a cat, sitting", "she said \"hi\"", "two\nlines", "a file that is not there"], Enumerable.Range(0, 4).Select(ds.Caption));
        Assert.Equal(dir.File("img/a.png"), ds.ImagePath(0));
        Assert.Equal(1, ds.Skips.Get(SkipReason.EmptyCaption));

        var pixels = new float[Gray4.PixelCount];
        for (int i = 0; i < 3; i++)
        {
            Assert.True(ds.TryLoad(i, Gray4, pixels, out string caption, out int label));
            Assert.Equal(ds.Caption(i), caption);
            Assert.Equal(-1, label);
        }

        // Image files are checked when loaded, not at open.
        Assert.False(ds.TryLoad(3, Gray4, pixels, out _, out _));
        Assert.Equal(1, ds.Skips.Get(SkipReason.MissingImage));
    }

    [Fact]
    public void Missing_column_error_names_it_and_lists_the_columns_present()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("data.csv"), "filepath,title\nx.png,hello\n");

        DataException error = Assert.Throws<DataException>(
            () => CsvDataset.Open(dir.File("data.csv"), new CsvOptions { CaptionColumn = "caption_text" }));

        Assert.Contains("\"caption_text\"", error.Message);
        Assert.Contains("\"filepath\", \"title\"", error.Message);
    }

    [Fact]
    public void Headerless_file_with_another_separator_uses_column_indices()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("p.png"), TestImages.SolidPng(3, 3, new Rgb24(0, 0, 0)));
        File.WriteAllText(dir.File("data.tsv"), "a dark square\tp.png\n\"semi;colon\ttab\"\tp.png\n");

        CsvDataset ds = CsvDataset.Open(dir.File("data.tsv"), new CsvOptions { Separator = '\t', HasHeader = false, ImageColumn = "1", CaptionColumn = "0" });

        Assert.Equal(2, ds.Count);
        Assert.Equal("semi;colon\ttab", ds.Caption(1));
        Assert.True(ds.TryLoad(0, Gray4, new float[Gray4.PixelCount], out string caption, out _));
        Assert.Equal("a dark square", caption);
    }

    [Fact]
    public void Short_rows_and_an_unterminated_quote_count_as_truncated_entries()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("data.csv"), "filepath,title\nonly-one-field\nok.png,fine\nx.png,\"never closed\n");

        CsvDataset ds = CsvDataset.Open(dir.File("data.csv"), new CsvOptions());

        Assert.Equal(1, ds.Count);
        Assert.Equal(2, ds.Skips.Get(SkipReason.TruncatedEntry));
    }

    [Fact]
    public void Corrupt_image_file_is_undecodable_at_load()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("bad.jpg"), TestImages.Garbage(100, seed: 1));
        File.WriteAllText(dir.File("data.csv"), "filepath,title\nbad.jpg,broken\n");

        CsvDataset ds = CsvDataset.Open(dir.File("data.csv"));

        Assert.False(ds.TryLoad(0, Gray4, new float[Gray4.PixelCount], out _, out _));
        Assert.Equal(1, ds.Skips.Get(SkipReason.UndecodableImage));
    }

    [Fact]
    public async Task Rows_naming_a_directory_a_fifo_or_a_device_are_skipped_and_counted_without_opening_them()
    {
        using var dir = new TempDirectory();
        Directory.CreateDirectory(dir.File("folder"));
        string fifo = dir.File("pipe.png");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
        {
            mkfifo.WaitForExit();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        File.WriteAllBytes(dir.File("ok.png"), TestImages.SolidPng(4, 4, new SixLabors.ImageSharp.PixelFormats.Rgb24(9, 9, 9)));
        File.WriteAllText(dir.File("data.csv"), $"filepath,title\nfolder,a directory\n/,the root\npipe.png,a fifo\n/dev/zero,a device\nok.png,fine\n");
        CsvDataset ds = CsvDataset.Open(dir.File("data.csv"));
        var pixels = new float[Gray4.PixelCount];

        // A FIFO opened for reading would block until a writer came: the bound is the test's own deadline.
        var loads = Task.Run(() => Enumerable.Range(0, 5).Select(i => ds.TryLoad(i, Gray4, pixels, out _, out _)).ToArray());
        bool[] loaded = await loads.WaitAsync(TimeSpan.FromSeconds(20)); // a TimeoutException: it blocked (opened the FIFO?)

        Assert.Equal([false, false, false, false, true], loaded);
        Assert.Equal(4, ds.Skips.Get(SkipReason.NotARegularFile));
    }

    [Fact]
    public async Task A_64_MiB_caption_and_a_row_of_a_million_fields_are_read_within_bounds()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("ok.png"), TestImages.SolidPng(4, 4, new SixLabors.ImageSharp.PixelFormats.Rgb24(9, 9, 9)));
        using (var csv = new StreamWriter(dir.File("data.csv")))
        {
            csv.Write("filepath,title\nok.png,\"");
            var chunk = new string('x', 1 << 20);
            for (int i = 0; i < 64; i++)
            {
                csv.Write(chunk);
            }

            csv.Write("\"\nok.png,short");
            csv.Write(new string(',', 1_000_000));
            csv.Write("\n");
        }

        // On a thread of its own, so that its allocations are counted alone, and under a deadline: a
        // reader that blocked or looped on the caption would fail here rather than hang the suite.
        var (ds, allocated) = await Task.Factory.StartNew(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            CsvDataset opened = CsvDataset.Open(dir.File("data.csv"));
            return (opened, GC.GetAllocatedBytesForCurrentThread() - before);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(2, ds.Count);
        Assert.Equal(CsvReader.MaxFieldChars, ds.Caption(0).Length);
        Assert.Equal("short", ds.Caption(1));
        Assert.True(allocated < 64L << 20, $"reading allocated {allocated >> 20} MB for a 64 MiB caption");
    }

    [Fact]
    public void Missing_csv_file_is_a_data_exception()
    {
        using var dir = new TempDirectory();

        DataException error = Assert.Throws<DataException>(() => CsvDataset.Open(dir.File("nope.csv")));

        Assert.Contains("nope.csv", error.Message);
    }
}

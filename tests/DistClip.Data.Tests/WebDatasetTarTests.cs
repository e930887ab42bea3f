using System.Formats.Tar;
using System.Text;
using SixLabors.ImageSharp.PixelFormats;

namespace DistClip.Data.Tests;

public sealed class WebDatasetTarTests
{
    private static readonly ImageSpec Rgb4 = new(3, 4, [0f, 0f, 0f], [1f, 1f, 1f]);

    [Fact]
    public void Good_samples_load_and_broken_ones_are_counted_by_reason()
    {
        using var dir = new TempDirectory();
        string shard = dir.File("shard-000.tar");
        var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            Add(writer, "s000.png", TestImages.SolidPng(8, 6, new Rgb24(255, 0, 0)));
            Add(writer, "s000.txt", "a red square");
            Add(writer, "s001.txt", "a green thing");
            Add(writer, "s001.jpg", TestImages.SolidJpeg(5, 9, new Rgb24(0, 255, 0)));
            Add(writer, "bad.jpg", TestImages.Garbage(500, seed: 3));
            Add(writer, "bad.txt", "caption of a corrupt image");
            Add(writer, "nocap.png", TestImages.SolidPng(4, 4, new Rgb24(1, 1, 1)));
            Add(writer, "sub/s002.PNG", TestImages.SolidPng(7, 7, new Rgb24(0, 0, 255)));
            Add(writer, "sub/s002.txt", "  a blue square\n");
            Add(writer, "tail.png", TestImages.Garbage(4000, seed: 4));
        }

        // Cut the archive in the middle of the last member's data.
        byte[] bytes = tar.ToArray();
        int tailData = LastHeaderOffset(bytes) + 512;
        File.WriteAllBytes(shard, bytes.AsSpan(0, tailData + 2000).ToArray());

        WebDatasetTar ds = WebDatasetTar.Open(shard);
        var pixels = new float[Rgb4.PixelCount];
        var captions = new List<string>();
        for (int i = 0; i < ds.Count; i++)
        {
            if (ds.TryLoad(i, Rgb4, pixels, out string caption, out int label))
            {
                captions.Add(caption);
                Assert.Equal(-1, label);
            }
        }

        Assert.Equal(4, ds.Count);
        Assert.Equal(["a red square", "a green thing", "a blue square"], captions);
        Assert.Equal(1, ds.Skips.Get(SkipReason.UndecodableImage));
        Assert.Equal(1, ds.Skips.Get(SkipReason.MissingCaption));
        Assert.Equal(1, ds.Skips.Get(SkipReason.TruncatedEntry));
        Assert.Equal(3, ds.Skips.Total);
        Assert.Null(ds.ClassNames);
    }

    [Fact]
    public void Decoded_pixels_come_from_the_right_member()
    {
        using var dir = new TempDirectory();
        string shard = dir.File("one.tar");
        WriteTar(shard, TarEntryFormat.Ustar, ("k.png", TestImages.SolidPng(6, 6, new Rgb24(255, 0, 0))), ("k.txt", Encoding.UTF8.GetBytes("red")));

        WebDatasetTar ds = WebDatasetTar.Open(shard);
        var pixels = new float[Rgb4.PixelCount];

        Assert.True(ds.TryLoad(0, Rgb4, pixels, out string caption, out _));
        Assert.Equal("red", caption);
        Assert.All(pixels.AsSpan(0, 16).ToArray(), p => Assert.Equal(1f, p, 5));
        Assert.All(pixels.AsSpan(16).ToArray(), p => Assert.Equal(0f, p, 5));
    }

    [Theory]
    [InlineData(TarEntryFormat.Gnu, 'L')]   // long names as 'L' entries
    [InlineData(TarEntryFormat.Pax, 'x')]   // long names as 'x' extended headers
    [InlineData(TarEntryFormat.Ustar, '0')] // long paths split into prefix + name
    public void Long_member_names_are_indexed_in_every_tar_format(TarEntryFormat format, char expectedFirstType)
    {
        using var dir = new TempDirectory();
        string shard = dir.File("long.tar");
        string folder = string.Join('/', Enumerable.Repeat("a-rather-long-folder-name", 5));
        WriteTar(
            shard,
            format,
            ($"{folder}/sample.png", TestImages.SolidPng(4, 4, new Rgb24(5, 5, 5))),
            ($"{folder}/sample.txt", Encoding.UTF8.GetBytes("deep")));
        byte[] bytes = File.ReadAllBytes(shard);
        Assert.Equal(expectedFirstType, (char)bytes[156]);
        Assert.True(format != TarEntryFormat.Ustar || bytes[345] != 0, "ustar should have used the prefix field");

        WebDatasetTar ds = WebDatasetTar.Open(shard);

        Assert.Equal(1, ds.Count);
        Assert.Equal($"{folder}/sample", ds.Key(0));
        Assert.True(ds.TryLoad(0, Rgb4, new float[Rgb4.PixelCount], out string caption, out _));
        Assert.Equal("deep", caption);
        Assert.Equal(0, ds.Skips.Total);
    }

    [Fact]
    public void A_corrupt_header_stops_that_shard_but_keeps_earlier_samples_and_later_shards()
    {
        using var dir = new TempDirectory();
        byte[] png = TestImages.SolidPng(4, 4, new Rgb24(5, 5, 5));
        WriteTar(dir.File("s-0.tar"), TarEntryFormat.Ustar, ("a.png", png), ("a.txt", "first"u8.ToArray()), ("b.png", png), ("b.txt", "second"u8.ToArray()));
        WriteTar(dir.File("s-1.tar"), TarEntryFormat.Ustar, ("c.png", png), ("c.txt", "third"u8.ToArray()));

        // Damage the third header of shard 0 ("b.png") so its checksum no longer matches.
        byte[] bytes = File.ReadAllBytes(dir.File("s-0.tar"));
        int third = HeaderOffsets(bytes)[2];
        bytes[third + 3] ^= 0x55;
        File.WriteAllBytes(dir.File("s-0.tar"), bytes);

        WebDatasetTar ds = WebDatasetTar.Open(Path.Combine(dir.Path, "s-{0..1}.tar"));

        Assert.Equal(2, ds.Count);
        Assert.Equal(["a", "c"], new[] { ds.Key(0), ds.Key(1) });
        Assert.Equal(1, ds.Skips.Get(SkipReason.TruncatedEntry));
        Assert.Equal(2, ds.Shards.Count);
    }

    [Fact]
    public void Blank_caption_is_skipped_at_load_as_empty_caption()
    {
        using var dir = new TempDirectory();
        WriteTar(dir.File("e.tar"), TarEntryFormat.Ustar, ("k.png", TestImages.SolidPng(4, 4, new Rgb24(5, 5, 5))), ("k.txt", " \n\t "u8.ToArray()));

        WebDatasetTar ds = WebDatasetTar.Open(dir.File("e.tar"));

        Assert.False(ds.TryLoad(0, Rgb4, new float[Rgb4.PixelCount], out _, out _));
        Assert.Equal(1, ds.Skips.Get(SkipReason.EmptyCaption));
    }

    [Fact]
    public void Missing_shard_is_named_in_the_error()
    {
        using var dir = new TempDirectory();
        WriteTar(dir.File("s-0.tar"), TarEntryFormat.Ustar, ("a.txt", "x"u8.ToArray()));

        DataException error = Assert.Throws<DataException>(() => WebDatasetTar.Open(Path.Combine(dir.Path, "s-{0..1}.tar")));

        Assert.Contains(dir.File("s-1.tar"), error.Message);
    }

    [Fact]
    public void Concurrent_loads_return_the_same_pixels_as_sequential_ones()
    {
        using var dir = new TempDirectory();
        var members = new List<(string, byte[])>();
        for (int i = 0; i < 12; i++)
        {
            members.Add(($"{i:D3}.png", TestImages.SolidPng(6 + i, 5, new Rgb24((byte)(i * 20), 50, 90))));
            members.Add(($"{i:D3}.txt", Encoding.UTF8.GetBytes($"caption {i}")));
        }

        WriteTar(dir.File("c.tar"), TarEntryFormat.Pax, [.. members]);
        WebDatasetTar ds = WebDatasetTar.Open(dir.File("c.tar"));
        float[][] sequential = Enumerable.Range(0, ds.Count).Select(i => Load(ds, i)).ToArray();

        var parallel = new float[ds.Count][];
        Parallel.For(0, ds.Count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = Load(ds, i));

        Assert.Equal(sequential, parallel);
    }

    [Theory]
    [InlineData("dir/abc.def.jpg", "dir/abc", "def.jpg")]
    [InlineData("abc.JPG", "abc", "jpg")]
    [InlineData("a.b/c.txt", "a.b/c", "txt")]
    public void Keys_run_to_the_first_dot_of_the_basename(string name, string key, string extension)
    {
        Assert.True(WebDatasetTar.SplitName(name, out string k, out string e));
        Assert.Equal(key, k);
        Assert.Equal(extension, e);
    }

    private static float[] Load(WebDatasetTar ds, int i)
    {
        var pixels = new float[Rgb4.PixelCount];
        Assert.True(ds.TryLoad(i, Rgb4, pixels, out _, out _));
        return pixels;
    }

    private static void Add(TarWriter writer, string name, string text) => Add(writer, name, Encoding.UTF8.GetBytes(text));

    private static void Add(TarWriter writer, string name, byte[] data)
    {
        TarEntry entry = writer.Format switch
        {
            TarEntryFormat.Gnu => new GnuTarEntry(TarEntryType.RegularFile, name),
            TarEntryFormat.Ustar => new UstarTarEntry(TarEntryType.RegularFile, name),
            _ => new PaxTarEntry(TarEntryType.RegularFile, name),
        };
        entry.DataStream = new MemoryStream(data);
        writer.WriteEntry(entry);
    }

    private static void WriteTar(string path, TarEntryFormat format, params (string Name, byte[] Data)[] members)
    {
        using FileStream file = File.Create(path);
        using var writer = new TarWriter(file, format);
        foreach ((string name, byte[] data) in members)
        {
            Add(writer, name, data);
        }
    }

    /// <summary>Offsets of every header block, walking sizes the way tar does.</summary>
    private static List<int> HeaderOffsets(byte[] tar)
    {
        var offsets = new List<int>();
        int offset = 0;
        while (offset + 512 <= tar.Length && tar.AsSpan(offset, 512).IndexOfAnyExcept((byte)0) >= 0)
        {
            offsets.Add(offset);
            string octal = Encoding.ASCII.GetString(tar, offset + 124, 12).Trim('\0', ' ');
            long size = Convert.ToInt64(octal, 8);
            offset += 512 + (int)((size + 511) / 512 * 512);
        }

        return offsets;
    }

    private static int LastHeaderOffset(byte[] tar) => HeaderOffsets(tar)[^1];
}

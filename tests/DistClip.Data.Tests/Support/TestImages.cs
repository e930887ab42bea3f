using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DistClip.Data.Tests;

/// <summary>Small encoded images made in memory.</summary>
internal static class TestImages
{
    public static byte[] SolidPng(int width, int height, Rgb24 colour)
    {
        using var image = new Image<Rgb24>(width, height, colour);
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    public static byte[] SolidJpeg(int width, int height, Rgb24 colour)
    {
        using var image = new Image<Rgb24>(width, height, colour);
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream);
        return stream.ToArray();
    }

    /// <summary>Random bytes that no decoder recognises (seeded).</summary>
    public static byte[] Garbage(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        bytes[0] = 0x00; // never a valid signature for any supported format
        return bytes;
    }

    /// <summary>
    /// A syntactically valid PNG whose IHDR declares <paramref name="width"/>×<paramref name="height"/>
    /// RGB but whose IDAT holds only a few bytes: tiny on disk, enormous if anyone allocates for it.
    /// </summary>
    public static byte[] PngWithDeclaredSize(int width, int height)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);

        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(0), width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8;  // bit depth
        ihdr[9] = 2;  // colour type RGB
        ihdr[10] = 0; // deflate
        ihdr[11] = 0; // adaptive filtering
        ihdr[12] = 0; // no interlace
        WriteChunk(png, "IHDR", ihdr);

        using (var compressed = new MemoryStream())
        {
            using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            {
                zlib.Write(new byte[16]);
            }

            WriteChunk(png, "IDAT", compressed.ToArray());
        }

        WriteChunk(png, "IEND", []);
        return png.ToArray();
    }

    /// <summary>
    /// A valid 2×2 RGB PNG with a zTXt chunk whose text inflates to <paramref name="inflatedBytes"/>
    /// (zeros compress about 1000:1): a decoder that reads metadata allocates all of it.
    /// </summary>
    public static byte[] PngWithTextBomb(long inflatedBytes)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(0), 2);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), 2);
        ihdr[8] = 8;
        ihdr[9] = 2;
        WriteChunk(png, "IHDR", ihdr);

        using (var text = new MemoryStream())
        {
            text.Write("Comment\0\0"u8); // keyword, its terminator, compression method 0
            using (var zlib = new ZLibStream(text, CompressionLevel.Optimal, leaveOpen: true))
            {
                var zeros = new byte[1 << 20];
                for (long written = 0; written < inflatedBytes; written += zeros.Length)
                {
                    zlib.Write(zeros, 0, (int)Math.Min(zeros.Length, inflatedBytes - written));
                }
            }

            WriteChunk(png, "zTXt", text.ToArray());
        }

        using (var compressed = new MemoryStream())
        {
            using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            {
                zlib.Write(new byte[] { 0, 7, 7, 7, 7, 7, 7, 0, 7, 7, 7, 7, 7, 7 }); // two rows: filter 0, then RGB RGB
            }

            WriteChunk(png, "IDAT", compressed.ToArray());
        }

        WriteChunk(png, "IEND", []);
        return png.ToArray();
    }

    /// <summary>
    /// An animated GIF of <paramref name="frames"/> solid frames of <paramref name="width"/>×<paramref name="height"/>,
    /// each a different colour: small on disk (solid frames compress well), width × height pixels per
    /// frame for a decoder that decodes them all.
    /// </summary>
    public static byte[] AnimatedGif(int width, int height, int frames)
    {
        using var animation = new Image<Rgb24>(width, height, new Rgb24(7, 7, 7));
        for (int f = 1; f < frames; f++)
        {
            using var frame = new Image<Rgb24>(width, height, new Rgb24((byte)(10 + f), 7, 7));
            animation.Frames.AddFrame(frame.Frames.RootFrame);
        }

        using var gif = new MemoryStream();
        animation.SaveAsGif(gif);
        return gif.ToArray();
    }

    /// <summary>
    /// The probe of issue #15, byte for byte in kind: a GIF89a whose logical screen is
    /// <paramref name="width"/>×<paramref name="height"/>, with <paramref name="frames"/> frames of one
    /// pixel each (15 bytes a frame: 300 frames of 4000×4000 fit in 4.5 KB). A decoder gives every frame
    /// the whole screen, so decoding them all allocates frames × width × height pixels.
    /// </summary>
    public static byte[] GifBomb(int width, int height, int frames)
    {
        using var gif = new MemoryStream();
        gif.Write("GIF89a"u8);
        Span<byte> screen = stackalloc byte[7];
        BinaryPrimitives.WriteUInt16LittleEndian(screen, (ushort)width);
        BinaryPrimitives.WriteUInt16LittleEndian(screen[2..], (ushort)height);
        screen[4] = 0x80; // a global colour table of 2 entries
        gif.Write(screen);
        gif.Write([7, 7, 7, 200, 200, 200]); // colour 0: (7, 7, 7)
        for (int f = 0; f < frames; f++)
        {
            // Image descriptor: at (0, 0), 1×1, no local table; LZW minimum code size 2; one
            // sub-block of 2 bytes (clear, index 0, end of information); block terminator.
            gif.Write([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0]);
        }

        gif.WriteByte(0x3B);
        return gif.ToArray();
    }

    private static void WriteChunk(Stream png, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        png.Write(word);
        byte[] typeAndData = [.. Encoding.ASCII.GetBytes(type), .. data];
        png.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32(typeAndData));
        png.Write(word);
    }

    /// <summary>CRC-32 (IEEE, reflected, as PNG specifies).</summary>
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
            }
        }

        return ~crc;
    }
}

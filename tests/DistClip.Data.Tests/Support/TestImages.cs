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

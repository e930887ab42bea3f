using System.Buffers.Binary;
using System.IO.Compression;

namespace DistClip.Data;

/// <summary>Reads the big-endian IDX format of (Fashion-)MNIST, gzip-compressed or plain.</summary>
internal static class IdxFile
{
    // Magic = 0x0000, element type 0x08 (unsigned byte), number of dimensions.
    private const int UnsignedByteType = 0x08;

    /// <summary>Reads a file of unsigned bytes with <paramref name="rank"/> dimensions; returns its shape and data.</summary>
    public static (int[] Shape, byte[] Data) Read(string path, int rank)
    {
        using Stream stream = Open(path);
        var (shape, total) = ReadShape(stream, path, rank);
        var data = new byte[total];
        ReadExactly(stream, data, path, "data");
        if (stream.ReadByte() != -1)
        {
            throw new DataException($"{path}: data continues past the declared shape [{string.Join(", ", shape)}].");
        }

        return (shape, data);
    }

    /// <summary>The shape of a file of unsigned bytes with <paramref name="rank"/> dimensions, from its header alone.</summary>
    public static int[] ReadShape(string path, int rank)
    {
        using Stream stream = Open(path);
        return ReadShape(stream, path, rank).Shape;
    }

    private static Stream Open(string path)
    {
        Stream file = File.OpenRead(path);
        return path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
    }

    private static (int[] Shape, long Total) ReadShape(Stream stream, string path, int rank)
    {
        Span<byte> header = stackalloc byte[4];
        ReadExactly(stream, header, path, "magic number");
        int magic = BinaryPrimitives.ReadInt32BigEndian(header);
        int expected = (UnsignedByteType << 8) | rank;
        if (magic != expected)
        {
            throw new DataException($"{path} is not an IDX file of {rank}-D unsigned bytes: magic number 0x{magic:X8}, expected 0x{expected:X8}.");
        }

        var shape = new int[rank];
        long total = 1;
        for (int d = 0; d < rank; d++)
        {
            ReadExactly(stream, header, path, $"dimension {d}");
            shape[d] = BinaryPrimitives.ReadInt32BigEndian(header);
            if (shape[d] < 0)
            {
                throw new DataException($"{path}: dimension {d} is negative ({shape[d]}).");
            }

            total *= shape[d];
        }

        if (total > Array.MaxLength)
        {
            throw new DataException($"{path}: shape [{string.Join(", ", shape)}] is too large to hold in memory.");
        }

        return (shape, total);
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string path, string what)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new DataException($"{path} ends early while reading its {what}: the file is truncated.", e);
        }
        catch (InvalidDataException e)
        {
            throw new DataException($"{path} is not valid gzip: {e.Message}", e);
        }
    }
}

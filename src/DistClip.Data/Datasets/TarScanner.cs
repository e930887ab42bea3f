using System.Diagnostics.CodeAnalysis;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace DistClip.Data;

/// <summary>A regular file inside a tar: where its data starts and how long it is.</summary>
internal readonly record struct TarMember(string Name, long DataOffset, long Size);

/// <summary>
/// Reads only the 512-byte headers of a tar file and records where each regular file's data lies.
/// System.Formats.Tar's TarReader exposes no offsets and throws on a truncated archive; here a
/// truncated or corrupt tail ends the scan with the members before it kept.
/// Understands ustar (with prefix), GNU long names ('L'), GNU base-256 sizes and pax headers ('x': path, size).
/// </summary>
internal static class TarScanner
{
    private const int Block = 512;

    // A long name or pax record beyond this is treated as corruption rather than read into memory.
    private const long MaxMetadataSize = 1024 * 1024;

    /// <summary>Scans <paramref name="path"/>; <paramref name="problem"/> says why it stopped early, null when it reached the end cleanly.</summary>
    public static List<TarMember> Scan(string path, out string? problem)
    {
        using SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = RandomAccess.GetLength(handle);
        var members = new List<TarMember>();
        var header = new byte[Block];
        string? longName = null;
        string? paxPath = null;
        long? paxSize = null;
        long offset = 0;
        problem = null;

        while (offset < length)
        {
            if (length - offset < Block)
            {
                problem = $"header at byte {offset} is cut off by the end of the file";
                break;
            }

            ReadExactly(handle, header, offset);
            if (header.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                // First block of the end-of-archive marker.
                break;
            }

            if (!ChecksumMatches(header))
            {
                problem = $"header at byte {offset} fails its checksum";
                break;
            }

            if (!TryParseSize(header.AsSpan(124, 12), out long size))
            {
                problem = $"header at byte {offset} has an unreadable size";
                break;
            }

            char type = (char)header[156];
            if (paxSize is long overridden && type is '0' or '\0' or '7')
            {
                size = overridden;
            }

            long dataOffset = offset + Block;
            if (size > length - dataOffset)
            {
                problem = $"member at byte {offset} declares {size} bytes but the file ends after {length - dataOffset}";
                break;
            }

            switch (type)
            {
                case 'L':
                    if (TryReadMetadata(handle, dataOffset, size, out byte[]? nameBytes))
                    {
                        longName = CString(nameBytes);
                    }
                    else
                    {
                        problem = $"GNU long name at byte {offset} is {size} bytes";
                    }

                    break;
                case 'x':
                    if (!TryReadMetadata(handle, dataOffset, size, out byte[]? pax) || !TryParsePax(pax, out paxPath, out paxSize))
                    {
                        problem = $"pax header at byte {offset} is malformed";
                    }

                    break;
                case '0' or '\0' or '7':
                    string name = paxPath ?? longName ?? HeaderName(header);
                    if (name.Length > 0 && !name.EndsWith('/'))
                    {
                        members.Add(new TarMember(name, dataOffset, size));
                    }

                    (longName, paxPath, paxSize) = (null, null, null);
                    break;
                default:
                    // Directories, links, global pax ('g'), GNU 'K' and the rest carry nothing we index.
                    if (type != 'K')
                    {
                        (longName, paxPath, paxSize) = (null, null, null);
                    }

                    break;
            }

            if (problem is not null)
            {
                break;
            }

            offset = dataOffset + RoundUp(size);
        }

        return members;
    }

    private static long RoundUp(long size) => (size + Block - 1) / Block * Block;

    private static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        while (buffer.Length > 0)
        {
            int read = RandomAccess.Read(handle, buffer, offset);
            if (read == 0)
            {
                throw new EndOfStreamException($"Unexpected end of file at byte {offset}.");
            }

            buffer = buffer[read..];
            offset += read;
        }
    }

    /// <summary>The checksum counts the checksum field as eight spaces; old writers summed signed bytes.</summary>
    private static bool ChecksumMatches(byte[] header)
    {
        if (!TryParseOctal(header.AsSpan(148, 8), out long stored))
        {
            return false;
        }

        long unsignedSum = 0;
        long signedSum = 0;
        for (int i = 0; i < Block; i++)
        {
            byte b = i is >= 148 and < 156 ? (byte)' ' : header[i];
            unsignedSum += b;
            signedSum += (sbyte)b;
        }

        return stored == unsignedSum || stored == signedSum;
    }

    private static bool TryParseSize(ReadOnlySpan<byte> field, out long size)
    {
        if ((field[0] & 0x80) != 0)
        {
            // GNU base-256: big-endian two's complement in the remaining bits.
            if ((field[0] & 0x40) != 0)
            {
                size = 0;
                return false;
            }

            long value = field[0] & 0x3F;
            for (int i = 1; i < field.Length; i++)
            {
                if (value > (long.MaxValue >> 8))
                {
                    size = 0;
                    return false;
                }

                value = (value << 8) | field[i];
            }

            size = value;
            return true;
        }

        return TryParseOctal(field, out size);
    }

    /// <summary>Octal digits, optionally surrounded by spaces and NULs.</summary>
    private static bool TryParseOctal(ReadOnlySpan<byte> field, out long value)
    {
        value = 0;
        int i = 0;
        while (i < field.Length && field[i] is (byte)' ' or 0)
        {
            i++;
        }

        int digits = 0;
        for (; i < field.Length && field[i] is >= (byte)'0' and <= (byte)'7'; i++, digits++)
        {
            if (value > (long.MaxValue >> 3))
            {
                return false;
            }

            value = (value << 3) | (long)(field[i] - '0');
        }

        for (; i < field.Length; i++)
        {
            if (field[i] is not ((byte)' ' or 0))
            {
                return false;
            }
        }

        return digits > 0;
    }

    private static string HeaderName(byte[] header)
    {
        string name = CString(header.AsSpan(0, 100));

        // POSIX ustar ("ustar\0") splits long paths into prefix/name; GNU ("ustar  ") uses those bytes otherwise.
        bool posix = header.AsSpan(257, 6).SequenceEqual("ustar\0"u8);
        string prefix = posix ? CString(header.AsSpan(345, 155)) : string.Empty;
        return prefix.Length > 0 ? prefix + "/" + name : name;
    }

    private static string CString(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }

    private static bool TryReadMetadata(SafeFileHandle handle, long offset, long size, [NotNullWhen(true)] out byte[]? bytes)
    {
        bytes = null;
        if (size > MaxMetadataSize)
        {
            return false;
        }

        bytes = new byte[size];
        ReadExactly(handle, bytes, offset);
        return true;
    }

    /// <summary>Pax records are "LEN key=value\n" where LEN counts the whole record in bytes.</summary>
    private static bool TryParsePax(byte[] bytes, out string? path, out long? size)
    {
        path = null;
        size = null;
        int pos = 0;
        while (pos < bytes.Length)
        {
            int space = Array.IndexOf(bytes, (byte)' ', pos);
            if (space < 0 || !int.TryParse(Encoding.ASCII.GetString(bytes, pos, space - pos), out int recordLength)
                || recordLength <= space - pos || pos + recordLength > bytes.Length || bytes[pos + recordLength - 1] != '\n')
            {
                return false;
            }

            string record = Encoding.UTF8.GetString(bytes, space + 1, pos + recordLength - space - 2);
            int equals = record.IndexOf('=');
            if (equals <= 0)
            {
                return false;
            }

            string key = record[..equals];
            string value = record[(equals + 1)..];
            if (key == "path")
            {
                path = value;
            }
            else if (key == "size")
            {
                if (!long.TryParse(value, out long parsed) || parsed < 0)
                {
                    return false;
                }

                size = parsed;
            }

            pos += recordLength;
        }

        return true;
    }
}

using System.Text;

namespace DistClip.Data;

/// <summary>
/// RFC 4180 records from a text stream: quoted fields may hold separators, doubled quotes and line
/// breaks; records end at CRLF, LF or CR. Lenient where the RFC is silent: text after a closing
/// quote is kept, and a quote inside an unquoted field is literal. Bounded whatever the input: a
/// field keeps its first <see cref="MaxFieldChars"/> characters and a record its first
/// <see cref="MaxFields"/> fields; the rest is read past, so a 64 MiB caption or a line of a million
/// separators costs no more memory than a normal row.
/// </summary>
internal sealed class CsvReader
{
    private readonly TextReader _reader;
    private readonly char _separator;
    private readonly StringBuilder _field = new();

    /// <summary>Characters a field keeps (a caption is tokenised to a few dozen tokens anyway).</summary>
    public const int MaxFieldChars = 64 * 1024;

    /// <summary>Fields a record keeps.</summary>
    public const int MaxFields = 1024;

    public CsvReader(TextReader reader, char separator)
    {
        if (separator is '"' or '\r' or '\n')
        {
            throw new ArgumentException($"'{separator}' cannot separate CSV fields.", nameof(separator));
        }

        _reader = reader;
        _separator = separator;
    }

    /// <summary>1-based line on which the last record returned started, for error messages.</summary>
    public long RecordLine { get; private set; }

    private long Line { get; set; } = 1;

    /// <summary>Reads the next record into <paramref name="fields"/>; false at end of input. Blank lines are skipped.</summary>
    /// <param name="unterminatedQuote">True when the input ended inside a quoted field.</param>
    public bool TryRead(List<string> fields, out bool unterminatedQuote)
    {
        fields.Clear();
        unterminatedQuote = false;
        int c = _reader.Read();
        while (c is '\r' or '\n')
        {
            ConsumeLineBreak(c);
            c = _reader.Read();
        }

        if (c < 0)
        {
            return false;
        }

        RecordLine = Line;
        while (true)
        {
            _field.Clear();
            if (c == '"')
            {
                c = ReadQuoted(out unterminatedQuote);
            }

            // Unquoted text, or what follows a closing quote.
            while (c >= 0 && c != _separator && c is not ('\r' or '\n'))
            {
                Append((char)c);
                c = _reader.Read();
            }

            if (fields.Count < MaxFields)
            {
                fields.Add(_field.ToString());
            }

            if (c == _separator)
            {
                c = _reader.Read();
                continue;
            }

            if (c is '\r' or '\n')
            {
                ConsumeLineBreak(c);
            }

            return true;
        }
    }

    /// <summary>Reads a quoted field's content after its opening quote; returns the character after the closing quote.</summary>
    private int ReadQuoted(out bool unterminated)
    {
        while (true)
        {
            int c = _reader.Read();
            if (c < 0)
            {
                unterminated = true;
                return c;
            }

            if (c == '"')
            {
                if (_reader.Peek() == '"')
                {
                    _reader.Read();
                    Append('"');
                    continue;
                }

                unterminated = false;
                return _reader.Read();
            }

            if (c == '\n' || (c == '\r' && _reader.Peek() != '\n'))
            {
                Line++;
            }

            Append((char)c);
        }
    }

    private void Append(char c)
    {
        if (_field.Length < MaxFieldChars)
        {
            _field.Append(c);
        }
    }

    /// <summary>Finishes the line break that <paramref name="c"/> (already read) starts: CRLF counts as one.</summary>
    private void ConsumeLineBreak(int c)
    {
        if (c == '\r' && _reader.Peek() == '\n')
        {
            _reader.Read();
        }

        Line++;
    }
}

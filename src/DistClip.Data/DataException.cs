namespace DistClip.Data;

/// <summary>
/// A dataset, tokenizer or loader that cannot be used as configured (missing files, bad formats,
/// unknown columns). Individual bad samples are never reported this way: they are skipped and
/// counted in <see cref="SkipCounters"/>.
/// </summary>
public sealed class DataException : Exception
{
    public DataException(string message)
        : base(message)
    {
    }

    public DataException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

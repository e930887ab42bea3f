namespace DistClip.Tls;

/// <summary>
/// A TLS option that cannot be used (a missing or unreadable file, not PEM, a key that is not the certificate's), named as written, e.g. <c>--tls-key</c>.
/// An <see cref="ArgumentException"/>: the programs refuse it as they refuse any bad option.
/// </summary>
public sealed class TlsOptionException(string option, string detail) : ArgumentException($"{option}: {detail}")
{
    public string Option { get; } = option;

    public string Detail { get; } = detail;
}

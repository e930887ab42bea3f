using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace DistClip.Tls;

/// <summary>
/// One process's TLS material for a run: its certificate (with the private key) and the run's CA,
/// the only root it trusts. Every end presents its certificate and requires the peer's (mutual TLS):
/// a certificate is good when it chains to this CA, whatever the system's roots say, and a server's
/// also names the host it was reached by (its SANs). The same options serve both planes, the
/// coordinator's Kestrel and the data plane's own HTTP/2 ends, so one check decides for all.
/// </summary>
public sealed class RunTls : IDisposable
{
    /// <summary>The files of <c>--tls-dir</c>: the layout launch writes and a kubernetes.io/tls Secret mounts (ca.crt, tls.crt, tls.key) are both read.</summary>
    public static readonly (string Ca, string Cert, string Key)[] DirectoryLayouts =
    [
        ("ca.pem", "cert.pem", "key.pem"),
        ("ca.crt", "tls.crt", "tls.key"),
    ];

    private static readonly List<SslApplicationProtocol> H2 = [SslApplicationProtocol.Http2];

    private RunTls(X509Certificate2 certificate, X509Certificate2 authority)
    {
        Certificate = certificate;
        Authority = authority;
        Context = SslStreamCertificateContext.Create(certificate, [], offline: true);
    }

    /// <summary>This process's certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The run's CA: the one trust root.</summary>
    public X509Certificate2 Authority { get; }

    private SslStreamCertificateContext Context { get; }

    /// <summary>
    /// Loads and checks <c>--tls-cert</c>, <c>--tls-key</c> and <c>--tls-ca</c>; a bad one is a
    /// <see cref="TlsOptionException"/> naming the option, before any work starts.
    /// </summary>
    public static RunTls Load(string certFile, string keyFile, string caFile)
    {
        string certPem = ReadPem("--tls-cert", certFile, "CERTIFICATE");
        string keyPem = ReadPem("--tls-key", keyFile, "PRIVATE KEY");
        string caPem = ReadPem("--tls-ca", caFile, "CERTIFICATE");
        X509Certificate2 authority;
        try
        {
            authority = X509Certificate2.CreateFromPem(caPem);
        }
        catch (CryptographicException e)
        {
            throw new TlsOptionException("--tls-ca", $"{caFile} holds no readable certificate: {e.Message}");
        }

        X509Certificate2 certificate;
        try
        {
            X509Certificate2.CreateFromPem(certPem).Dispose();
        }
        catch (CryptographicException e)
        {
            authority.Dispose();
            throw new TlsOptionException("--tls-cert", $"{certFile} holds no readable certificate: {e.Message}");
        }

        try
        {
            certificate = X509Certificate2.CreateFromPem(certPem, keyPem);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            authority.Dispose();
            throw new TlsOptionException("--tls-key", $"{keyFile} is not the private key of --tls-cert {certFile}: {e.Message}");
        }

        var tls = new RunTls(certificate, authority);
        if (!tls.ChainsToAuthority(certificate))
        {
            tls.Dispose();
            throw new TlsOptionException("--tls-cert", $"{certFile} is not issued by --tls-ca {caFile} (or is expired)");
        }

        return tls;
    }

    /// <summary>Loads <c>--tls-dir</c>: ca.pem, cert.pem and key.pem, or a Kubernetes TLS Secret's ca.crt, tls.crt and tls.key.</summary>
    public static RunTls LoadDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new TlsOptionException("--tls-dir", $"{directory} is not a directory");
        }

        foreach (var (ca, cert, key) in DirectoryLayouts)
        {
            if (File.Exists(Path.Combine(directory, cert)))
            {
                return Load(Path.Combine(directory, cert), Path.Combine(directory, key), Path.Combine(directory, ca));
            }
        }

        throw new TlsOptionException("--tls-dir", $"{directory} holds neither cert.pem nor tls.crt");
    }

    /// <summary>
    /// The TLS options from a command line's <c>--tls-dir</c> or its three files (all three or none);
    /// null when none is given (TLS off).
    /// </summary>
    public static RunTls? FromOptions(string? directory, string? certFile, string? keyFile, string? caFile)
    {
        if (directory is not null)
        {
            if (certFile is not null || keyFile is not null || caFile is not null)
            {
                throw new TlsOptionException("--tls-dir", "give --tls-dir or --tls-cert/--tls-key/--tls-ca, not both");
            }

            return LoadDirectory(directory);
        }

        if (certFile is null && keyFile is null && caFile is null)
        {
            return null;
        }

        return Load(
            certFile ?? throw new TlsOptionException("--tls-cert", "is required with --tls-key and --tls-ca"),
            keyFile ?? throw new TlsOptionException("--tls-key", "is required with --tls-cert and --tls-ca"),
            caFile ?? throw new TlsOptionException("--tls-ca", "is required with --tls-cert and --tls-key"));
    }

    /// <summary>A server end's options: this certificate, ALPN h2, TLS 1.2 or later, and a client certificate from the run's CA required.</summary>
    public SslServerAuthenticationOptions ServerOptions() => new()
    {
        ServerCertificateContext = Context,
        ApplicationProtocols = H2,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ClientCertificateRequired = true,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, errors) => IsClientTrusted(certificate, errors),
    };

    /// <summary>A client end's options for reaching <paramref name="host"/>: ALPN h2, this certificate presented, the server's checked against the run's CA and the host.</summary>
    public SslClientAuthenticationOptions ClientOptions(string host) => new()
    {
        TargetHost = host,
        ApplicationProtocols = H2,
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ClientCertificateContext = Context,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, errors) => IsServerTrusted(certificate, errors),
    };

    /// <summary>
    /// A server's certificate is good when it chains to the run's CA and names the host it was
    /// reached by. SslStream checked the name against the SANs (<see cref="SslPolicyErrors.RemoteCertificateNameMismatch"/>);
    /// its chain verdict used the system's roots and is replaced by one against the run's CA alone.
    /// </summary>
    public bool IsServerTrusted(X509Certificate? certificate, SslPolicyErrors errors) =>
        (errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) == 0
        && certificate is not null && ChainsToAuthority(certificate);

    /// <summary>A client's certificate is good when there is one and it chains to the run's CA (clients have no name to check).</summary>
    public bool IsClientTrusted(X509Certificate? certificate, SslPolicyErrors errors) =>
        (errors & SslPolicyErrors.RemoteCertificateNotAvailable) == 0 && certificate is not null && ChainsToAuthority(certificate);

    private bool ChainsToAuthority(X509Certificate certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // Our certificates carry no EKU constraints that matter between ranks; the CA is run-local.
        if (certificate is X509Certificate2 full)
        {
            return chain.Build(full);
        }

        using var copy = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(copy);
    }

    private static string ReadPem(string option, string file, string label)
    {
        string text;
        try
        {
            text = File.ReadAllText(file);
        }
        catch (FileNotFoundException)
        {
            throw new TlsOptionException(option, $"{file} does not exist");
        }
        catch (DirectoryNotFoundException)
        {
            throw new TlsOptionException(option, $"{file} does not exist");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TlsOptionException(option, $"{file} cannot be read: {e.Message}");
        }

        // A private key's label varies (PRIVATE KEY, EC PRIVATE KEY, RSA PRIVATE KEY).
        if (!text.Contains("-----BEGIN ", StringComparison.Ordinal) || !text.Contains(label + "-----", StringComparison.Ordinal))
        {
            throw new TlsOptionException(option, $"{file} is not PEM (no '-----BEGIN ...{label}-----' block)");
        }

        return text;
    }

    public void Dispose()
    {
        Certificate.Dispose();
        Authority.Dispose();
    }
}

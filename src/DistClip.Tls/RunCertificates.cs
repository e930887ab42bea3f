using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace DistClip.Tls;

/// <summary>
/// A run-local CA and its certificates, for <c>coordinator launch --tls auto</c>: ECDSA P-256, valid
/// for <see cref="Validity"/>, each with SANs for 127.0.0.1, localhost and the run's hosts. Each
/// holder gets a directory of its own (ca.pem, cert.pem, key.pem; the key 0600), the layout
/// <c>--tls-dir</c> reads. The CA's private key is never written: nothing signs after launch.
/// </summary>
public static class RunCertificates
{
    /// <summary>How long generated certificates are valid: a run's length with margin, not a year.</summary>
    public static readonly TimeSpan Validity = TimeSpan.FromDays(7);

    /// <summary>
    /// Writes one directory per name in <paramref name="holders"/> under <paramref name="root"/>, each
    /// with a certificate for all of <paramref name="hosts"/> (plus 127.0.0.1 and localhost); returns
    /// the directories by holder.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Generate(string root, IEnumerable<string> holders, IEnumerable<string> hosts, TimeProvider? time = null)
    {
        var now = (time ?? TimeProvider.System).GetUtcNow();
        var notBefore = now.AddMinutes(-5); // clocks of a cluster's hosts differ a little
        var notAfter = now + Validity;
        var names = new[] { "127.0.0.1", "localhost" }.Concat(hosts).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();

        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest($"CN=DistClip run CA {Guid.NewGuid():N}", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(notBefore, notAfter);
        string caPem = ca.ExportCertificatePem();

        var directories = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string holder in holders)
        {
            string directory = Path.Combine(root, holder);
            Directory.CreateDirectory(directory);
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest($"CN=distclip {holder}", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            // Every holder is a server (its port) and a client (its calls): mutual TLS.
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
                [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
            var san = new SubjectAlternativeNameBuilder();
            foreach (string name in names)
            {
                if (IPAddress.TryParse(name, out var address))
                {
                    san.AddIpAddress(address);
                }
                else
                {
                    san.AddDnsName(name);
                }
            }

            request.CertificateExtensions.Add(san.Build());
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
            byte[] serial = RandomNumberGenerator.GetBytes(16);
            serial[0] &= 0x7F; // a positive serial number
            using var certificate = request.Create(ca, notBefore, notAfter, serial);

            File.WriteAllText(Path.Combine(directory, "ca.pem"), caPem);
            File.WriteAllText(Path.Combine(directory, "cert.pem"), certificate.ExportCertificatePem());
            WritePrivate(Path.Combine(directory, "key.pem"), key.ExportPkcs8PrivateKeyPem());
            directories[holder] = directory;
        }

        return directories;
    }

    /// <summary>Writes a key readable by its owner alone: created 0600, never briefly wider.</summary>
    private static void WritePrivate(string path, string text)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var writer = new StreamWriter(path, System.Text.Encoding.ASCII, options);
        writer.Write(text);
    }
}

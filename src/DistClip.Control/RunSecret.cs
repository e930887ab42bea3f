using System.Security.Cryptography;
using System.Text;

namespace DistClip.Control;

/// <summary>The run's join secret: who holds it may join the run and exchange tensors with its workers.</summary>
public static class RunSecret
{
    /// <summary>The metadata header every control and data-plane call carries.</summary>
    public const string Header = "x-distclip-secret";

    /// <summary>Environment variable through which launchers hand the secret to workers (never argv, which `ps` shows).</summary>
    public const string EnvironmentVariable = "DISTCLIP_SECRET";

    public static string Generate() => Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();

    /// <summary>Constant-time comparison, so the time to refuse says nothing about the secret.</summary>
    public static bool Matches(string expected, string? presented) =>
        presented is not null &&
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(expected), Encoding.UTF8.GetBytes(presented));

    /// <summary>Reads the secret from a file (its text, trimmed) or the environment.</summary>
    /// <exception cref="InvalidDataException">The file holds nothing but white space: with an empty secret, anyone sending an empty header would join.</exception>
    public static string? Load(string? file)
    {
        if (file is not null)
        {
            string secret = File.ReadAllText(file).Trim();
            return secret.Length > 0 ? secret
                : throw new InvalidDataException($"the secret file {file} is empty; it must hold the run's secret (e.g. 64 hex digits: openssl rand -hex 32)");
        }

        string? value = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }
}

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

    /// <summary>Reads the secret from a file (first line, trimmed) or the environment.</summary>
    public static string? Load(string? file)
    {
        if (file is not null)
        {
            return File.ReadAllText(file).Trim();
        }

        string? value = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }
}

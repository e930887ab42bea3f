namespace DistClip.Coordinator.Launchers;

/// <summary>
/// How a worker slot gets its TLS material: the worker's command-line arguments naming files, and,
/// when the files are one slot's generated directory (<c>--tls auto</c>), that directory, whose
/// contents the ssh launcher carries to a host that cannot read it.
/// </summary>
public sealed record WorkerTls(IReadOnlyList<string> Arguments, string? GeneratedDirectory = null)
{
    /// <summary>The files of a slot's generated directory, in the order the ssh launcher sends them.</summary>
    public static readonly string[] Files = ["ca.pem", "cert.pem", "key.pem"];

    public static WorkerTls Directory(string directory) => new(["--tls-dir", directory], directory);
}

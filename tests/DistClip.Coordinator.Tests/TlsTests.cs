using System.Net.Security;
using DistClip.Config;
using DistClip.Coordinator.Cli;
using DistClip.Tls;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace DistClip.Coordinator.Tests;

/// <summary>TLS on both planes: options refused by name, a TLS coordinator's refusals, and a whole run with <c>--tls auto</c>.</summary>
public sealed class TlsTests : IDisposable
{
    private const string Secret = "the-run-secret";

    private readonly string _dir = Directory.CreateTempSubdirectory("distclip-tls-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_two_worker_launch_with_tls_auto_trains_with_both_planes_over_TLS()
    {
        var result = await CoordinatorProcess.RunAsync(TimeSpan.FromMinutes(3),
            [.. Runs.Quick(_dir, "tls"), "--workers", "2", "--steps", "2", "--eval-samples", "100", "--retrieval-samples", "0", "--tls", "auto"]);

        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}\n{result.Stdout}\n{result.Stderr}");
        // The control plane listened on HTTPS only, so every join, heartbeat and report was TLS.
        Assert.Matches(@"coordinator listening at https://127\.0\.0\.1:\d+/", result.Stdout);
        for (int rank = 0; rank < 2; rank++)
        {
            // Each worker's link endpoint spoke TLS only (TlsLinkTests: plaintext is refused there).
            Assert.Matches(@"Collectives endpoint at https://127\.0\.0\.1:\d+/", File.ReadAllText(Path.Combine(_dir, "tls", "logs", $"worker-{rank}.log")));
            string key = Path.Combine(_dir, "tls", "tls", $"worker-{rank}", "key.pem");
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
            }
        }

        Assert.Equal(2, Runs.Summary(_dir, "tls").GetProperty("steps").GetInt32());
    }

    /// <summary>
    /// One <c>coordinator serve</c> with a run's certificates: a plaintext (h2c) call, and an HTTPS
    /// call whose client certificate another CA issued, both fail; the run CA's certificate is served.
    /// </summary>
    [Fact]
    public async Task A_TLS_coordinator_refuses_plaintext_and_another_CAs_client_and_serves_the_runs()
    {
        RunCertificates.Generate(Path.Combine(_dir, "run"), ["coordinator", "worker-0"], []);
        RunCertificates.Generate(Path.Combine(_dir, "other"), ["stranger"], []);
        await using var serve = CoordinatorProcess.Start(new Dictionary<string, string> { ["DISTCLIP_SECRET"] = Secret },
            "serve", "--bind", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--workers", "1", "--steps", "1",
            "--run-dir", Path.Combine(_dir, "serve"), "--checkpoint-dir", Path.Combine(_dir, "checkpoints"),
            "--tls-dir", Path.Combine(_dir, "run", "coordinator"));
        var address = new Uri((await serve.WaitForLineAsync(@"listening at (\S+);", TimeSpan.FromSeconds(60))).Groups[1].Value);
        using var worker = RunTls.LoadDirectory(Path.Combine(_dir, "run", "worker-0"));
        using var stranger = RunTls.LoadDirectory(Path.Combine(_dir, "other", "stranger"));

        var plaintext = await Assert.ThrowsAsync<RpcException>(() => CheckAsync(new UriBuilder(address) { Scheme = "http" }.Uri, null));
        // The stranger accepts any server: only the coordinator's check of its certificate can stop it.
        var foreign = await Assert.ThrowsAsync<RpcException>(() => CheckAsync(address, AnyServer(stranger)));
        var served = await CheckAsync(address, worker.ClientOptions(address.DnsSafeHost));

        Assert.Equal("https", address.Scheme);
        // h2c bytes on a TLS port: the connection fails (Unavailable) or its reply is no HTTP/2 (Internal).
        Assert.True(plaintext.StatusCode is StatusCode.Unavailable or StatusCode.Internal, $"{plaintext.StatusCode}: {plaintext.Status.Detail}");
        // Under TLS 1.3 the server's verdict on a client certificate comes after the client's handshake
        // ends: the refusal is a failed connection or an alert in place of the reply.
        Assert.True(foreign.StatusCode is StatusCode.Unavailable or StatusCode.Internal, $"{foreign.StatusCode}: {foreign.Status.Detail}");
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, served.Status);
    }

    [Theory]
    [InlineData("--tls-cert", "missing-cert")]
    [InlineData("--tls-key", "foreign-key")]
    [InlineData("--tls-ca", "ca-not-pem")]
    [InlineData("--tls-cert", "cert-of-another-ca")]
    [InlineData("--tls-key", "no-key")]
    [InlineData("--tls-dir", "dir-and-files")]
    [InlineData("--tls-dir", "dir-missing")]
    public async Task A_bad_TLS_option_is_refused_by_name_by_coordinator_and_worker(string option, string problem)
    {
        RunCertificates.Generate(Path.Combine(_dir, "run"), ["a", "b"], []);
        RunCertificates.Generate(Path.Combine(_dir, "other"), ["c"], []);
        string a = Path.Combine(_dir, "run", "a"), b = Path.Combine(_dir, "run", "b"), c = Path.Combine(_dir, "other", "c");
        string notPem = Path.Combine(_dir, "not.pem");
        File.WriteAllText(notPem, "just text\n");
        string[] args = problem switch
        {
            "missing-cert" => ["--tls-cert", Path.Combine(_dir, "nope.pem"), "--tls-key", Path.Combine(a, "key.pem"), "--tls-ca", Path.Combine(a, "ca.pem")],
            "foreign-key" => ["--tls-cert", Path.Combine(a, "cert.pem"), "--tls-key", Path.Combine(b, "key.pem"), "--tls-ca", Path.Combine(a, "ca.pem")],
            "ca-not-pem" => ["--tls-cert", Path.Combine(a, "cert.pem"), "--tls-key", Path.Combine(a, "key.pem"), "--tls-ca", notPem],
            "cert-of-another-ca" => ["--tls-cert", Path.Combine(c, "cert.pem"), "--tls-key", Path.Combine(c, "key.pem"), "--tls-ca", Path.Combine(a, "ca.pem")],
            "no-key" => ["--tls-cert", Path.Combine(a, "cert.pem"), "--tls-ca", Path.Combine(a, "ca.pem")],
            "dir-and-files" => ["--tls-dir", a, "--tls-ca", Path.Combine(a, "ca.pem")],
            "dir-missing" => ["--tls-dir", Path.Combine(_dir, "no-such-dir")],
            _ => throw new ArgumentOutOfRangeException(nameof(problem)),
        };

        var coordinator = Assert.Throws<ConfigException>(() => CoordinatorCommand.Parse(["--run-dir", _dir, .. args], serve: true));
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { ArgumentList = { CoordinatorProcess.WorkerDllPath, "--coordinator", "127.0.0.1:1" } };
        foreach (string arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        await using var process = CoordinatorProcess.Start(psi);
        var worker = await process.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(option, coordinator.Field);
        Assert.True(worker.ExitCode == 2, $"the worker exited {worker.ExitCode}, not 2 (bad arguments)\n{worker.Stderr}");
        Assert.StartsWith($"error: {option}:", worker.Stderr);
    }

    [Fact]
    public void Tls_auto_is_a_launch_option_and_excludes_given_certificates()
    {
        RunCertificates.Generate(Path.Combine(_dir, "run"), ["a"], []);

        var onServe = Assert.Throws<ConfigException>(() => CoordinatorCommand.Parse(["--tls", "auto"], serve: true));
        var both = Assert.Throws<ConfigException>(() => CoordinatorCommand.Parse(["--tls", "auto", "--tls-dir", Path.Combine(_dir, "run", "a")], serve: false));
        var launch = CoordinatorCommand.Parse(["--tls", "auto"], serve: false);

        Assert.Equal("tls", onServe.Field);
        Assert.Equal("--tls", both.Field);
        Assert.True(launch.TlsAuto);
        Assert.Null(launch.Tls);
    }

    private static SslClientAuthenticationOptions AnyServer(RunTls tls)
    {
        var options = tls.ClientOptions("127.0.0.1");
        options.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        return options;
    }

    private static async Task<HealthCheckResponse> CheckAsync(Uri address, SslClientAuthenticationOptions? tls)
    {
        using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { SslOptions = tls ?? new(), ConnectTimeout = TimeSpan.FromSeconds(30) },
            MaxRetryAttempts = 0,
        });
        return await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
    }
}

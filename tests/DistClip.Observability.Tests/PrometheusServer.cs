using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace DistClip.Observability.Tests;

/// <summary>
/// A real Prometheus (Debian's <c>prometheus</c>) on 127.0.0.1 with its own data directory, scraping
/// every second the targets that file-based discovery finds, exactly as README's configuration does.
/// Stopped by its process id.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    public const string Binary = "/usr/bin/prometheus";
    public const string Promtool = "/usr/bin/promtool";

    private readonly ChildProcess _process;
    private readonly HttpClient _http;

    private PrometheusServer(ChildProcess process, Uri address)
    {
        _process = process;
        Address = address;
        _http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri Address { get; }

    public int ProcessId => _process.Id;

    /// <summary>The scrape configuration README documents, with the run's targets file and a 1 s interval.</summary>
    public static string Config(string targetsFile) => $"""
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: distclip
            file_sd_configs:
              - files: ['{targetsFile}']
                refresh_interval: 5s
        """;

    /// <summary>Starts Prometheus and waits for its "ready" line.</summary>
    public static async Task<PrometheusServer> StartAsync(string directory, string targetsFile, TimeSpan deadline)
    {
        string config = Path.Combine(directory, "prometheus.yml");
        await File.WriteAllTextAsync(config, Config(targetsFile));
        // A port taken by another process between the probe and Prometheus' bind fails the start; try another.
        for (int attempt = 1; ; attempt++)
        {
            int port = FreePort();
            var process = ChildProcess.Start(Binary,
            [
                $"--config.file={config}",
                $"--storage.tsdb.path={Path.Combine(directory, "data")}",
                $"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=info",
            ]);
            try
            {
                await process.WaitForLineAsync("Server is ready to receive web requests", deadline);
                return new PrometheusServer(process, new Uri($"http://127.0.0.1:{port}/"));
            }
            catch (InvalidOperationException) when (attempt < 3 && process.Output.Contains("address already in use", StringComparison.Ordinal))
            {
                await process.DisposeAsync();
            }
            catch
            {
                await process.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>An instant query at <paramref name="time"/>; returns the series of the result vector.</summary>
    public async Task<IReadOnlyList<JsonElement>> QueryAsync(string promql, DateTimeOffset time, CancellationToken ct)
    {
        var data = await ApiAsync("api/v1/query", [new("query", promql), new("time", Unix(time))], ct);
        return [.. data.GetProperty("result").EnumerateArray()];
    }

    /// <summary>A range query with a 1 s step; returns each series' (time, value) points.</summary>
    public async Task<IReadOnlyList<(DateTimeOffset Time, double Value)[]>> QueryRangeAsync(string promql, DateTimeOffset from, DateTimeOffset to, CancellationToken ct)
    {
        var data = await ApiAsync("api/v1/query_range", [new("query", promql), new("start", Unix(from)), new("end", Unix(to)), new("step", "1")], ct);
        return [.. data.GetProperty("result").EnumerateArray().Select(series => series.GetProperty("values").EnumerateArray()
            .Select(p => (DateTimeOffset.FromUnixTimeMilliseconds((long)(p[0].GetDouble() * 1000)), double.Parse(p[1].GetString()!, CultureInfo.InvariantCulture)))
            .ToArray())];
    }

    /// <summary>Values of one label over the series that match <paramref name="match"/> (what a Grafana label_values variable lists).</summary>
    public async Task<IReadOnlyList<string>> LabelValuesAsync(string label, string match, CancellationToken ct)
    {
        using var response = await _http.GetAsync($"api/v1/label/{label}/values?match[]={Uri.EscapeDataString(match)}", ct);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        return [.. doc.RootElement.GetProperty("data").EnumerateArray().Select(v => v.GetString()!)];
    }

    private async Task<JsonElement> ApiAsync(string path, KeyValuePair<string, string>[] form, CancellationToken ct)
    {
        using var response = await _http.PostAsync(path, new FormUrlEncodedContent(form), ct);
        string body = await response.Content.ReadAsStringAsync(ct);
        using var doc = JsonDocument.Parse(body);
        if (doc.RootElement.GetProperty("status").GetString() != "success")
        {
            throw new InvalidOperationException($"Prometheus refused {form[0].Value}: {body}");
        }

        return doc.RootElement.GetProperty("data").Clone();
    }

    private static string Unix(DateTimeOffset t) => (t.ToUnixTimeMilliseconds() / 1000.0).ToString("F3", CultureInfo.InvariantCulture);

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>Stops Prometheus by its process id (SIGTERM, a clean shutdown of its database).</summary>
    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _process.StopAsync(TimeSpan.FromSeconds(20));
        await _process.DisposeAsync();
    }
}

namespace DistClip.Collectives.Tests;

/// <summary>N test-peer processes on 127.0.0.1 that have joined one group.</summary>
internal sealed class PeerCluster : IAsyncDisposable
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private PeerCluster(PeerProcess[] peers) => Peers = peers;

    public PeerProcess[] Peers { get; }

    public static async Task<PeerCluster> StartAsync(int worldSize, TimeSpan operationTimeout, long generation = 1)
    {
        // Each binds port 0 and reports it; then every process gets the full list. No fixed ports.
        var peers = await Task.WhenAll(Enumerable.Range(0, worldSize)
            .Select(r => PeerProcess.StartAsync(r, "test-secret", operationTimeout, Deadline)));
        var cluster = new PeerCluster(peers);
        string list = string.Join(',', peers.Select(p => $"http://127.0.0.1:{p.Port}"));
        foreach (var peer in peers)
        {
            peer.Send($"PEERS {generation} {list}");
        }

        await Task.WhenAll(peers.Select(p => p.ExpectAsync("JOINED", Deadline)));
        return cluster;
    }

    /// <summary>Runs one command on every rank; returns each rank's OK line split into fields.</summary>
    public async Task<string[][]> RunAsync(string command)
    {
        foreach (var peer in Peers)
        {
            peer.Send(command);
        }

        await Task.WhenAll(Peers.Select(p => p.ExpectAsync("STARTED", Deadline)));
        var lines = await Task.WhenAll(Peers.Select(p => p.ExpectAsync("", Deadline)));
        for (int r = 0; r < lines.Length; r++)
        {
            Assert.True(lines[r].StartsWith("OK ", StringComparison.Ordinal), $"rank {r} on '{command}': {lines[r]}");
        }

        return lines.Select(l => l.Split(' ')).ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var peer in Peers)
        {
            await peer.DisposeAsync();
        }
    }
}

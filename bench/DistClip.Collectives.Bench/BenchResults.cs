namespace DistClip.Collectives.Bench;

/// <param name="Client">Which link client and server carried the frames: <c>direct</c> (both DistClip's) or a comparison stack.</param>
/// <param name="BusToDuplexRatio">Bus bandwidth over raw TCP's rate per direction when both directions run at once.</param>
public sealed record AllReduceResult(
    int WorldSize, long Bytes, int Iterations, double SecondsPerOp, double AlgorithmGBps, double BusGBps, double BusToTcpRatio,
    double BusToDuplexRatio, double CpuSecondsPerOpPerRank, string Client);

public sealed record AllGatherResult(int WorldSize, int FloatsPerRank, int Iterations, double MeanMs, double P50Ms, double MaxMs);

/// <param name="TcpGBps">Raw TCP one way between two processes, median of the repeats: the reference.</param>
/// <param name="TcpDuplexGBps">
/// Raw TCP per direction while two processes send to each other at once: the traffic of an N = 2 ring
/// with no reduction and no framing, so the ceiling of an N = 2 all-reduce's bus bandwidth here.
/// </param>
public sealed record CollectivesBenchResults(
    double TcpGBps, IReadOnlyList<double> TcpRepeatsGBps, double TcpDuplexGBps, double? SingleStreamGBps,
    IReadOnlyList<AllReduceResult> AllReduce, IReadOnlyList<AllGatherResult> AllGather, string Machine);

namespace DistClip.Collectives.Bench;

public sealed record AllReduceResult(
    int WorldSize, long Bytes, int Iterations, double SecondsPerOp, double AlgorithmGBps, double BusGBps, double BusToTcpRatio, double CpuSecondsPerOpPerRank);

public sealed record AllGatherResult(int WorldSize, int FloatsPerRank, int Iterations, double MeanMs, double P50Ms, double MaxMs);

public sealed record CollectivesBenchResults(
    double TcpGBps, double? SingleStreamGBps, IReadOnlyList<AllReduceResult> AllReduce, IReadOnlyList<AllGatherResult> AllGather, string Machine);

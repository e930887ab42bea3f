using System.Text.Json;
using System.Text.Json.Nodes;
using DistClip.Checkpoints;
using DistClip.Config;
using DistClip.Data;
using DistClip.Training.Checkpointing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using OptimizerState = DistClip.Training.Checkpointing.OptimizerState;

namespace DistClip.Training;

/// <summary>
/// The session's state as it leaves and re-enters: checkpoints on storage (Save, Load) and a
/// replica's kept state handed over by a survivor (CaptureReplicaState, RestoreReplicaState), both
/// the same encoding of model, optimizer, step, data cursor, RNG and curve.
/// </summary>
public sealed partial class TrainingSession
{
    /// <summary>Restores model, optimizer, step, data cursor, RNG and curve from a verified checkpoint.</summary>
    public void Load(ResolvedCheckpoint checkpoint)
    {
        checkpoint.EnsureConfigCompatible(CheckpointConfig(), TrainOptions.ResumableChanges);
        using var model = checkpoint.Open(CheckpointFiles.Model);
        using var optimizer = checkpoint.Open(CheckpointFiles.Optimizer);
        Restore(checkpoint.Step, CheckpointState.Of(checkpoint), model, optimizer);
        LogResumed(_logger, checkpoint.Step, checkpoint.Directory);
    }

    /// <summary>Commits a checkpoint of the current state (rank 0 calls this; every rank holds the same state).</summary>
    /// <exception cref="InvalidOperationException">A parameter or optimizer moment is not finite: nothing is written, so pruning can never drop the last finite checkpoint for it.</exception>
    public CommittedCheckpoint Save(CheckpointStore store, CancellationToken ct)
    {
        EnsureFinite();
        var previous = _phase;
        _phase = TrainingPhase.Checkpoint;
        try
        {
            return Commit(store, ct);
        }
        finally
        {
            _phase = previous;
        }
    }

    private CommittedCheckpoint Commit(CheckpointStore store, CancellationToken ct)
    {
        var files = new Dictionary<string, Action<Stream>>
        {
            [CheckpointFiles.Model] = s =>
            {
                // Inside the write, so that a fault injected here takes the store's real cleanup path.
                _hooks.At(TrainingPhase.Checkpoint, StepsDone);
                ModelState.Save(Model, s);
            },
            [CheckpointFiles.Optimizer] = s => OptimizerState.Save((OptimizerHelper)_trainer.Optimizer, s),
        };
        return store.Commit(StepsDone, CaptureCheckpointState().ToJson(), CheckpointConfig(), files, ct);
    }

    /// <summary>
    /// The whole training state after the last completed step, in memory: what a checkpoint holds
    /// (model, optimizer, step, data cursor, RNG, curve), for a survivor to hand to the next
    /// generation over the data plane (<see cref="ReplicaState"/>). Consistent whenever it is taken:
    /// a step that was cut off (a lost peer, an abort) has changed nothing of it.
    /// </summary>
    public ReplicaState CaptureReplicaState()
    {
        using var model = new MemoryStream();
        ModelState.Save(Model, model);
        using var optimizer = new MemoryStream();
        OptimizerState.Save((OptimizerHelper)_trainer.Optimizer, optimizer);
        var state = System.Text.Encoding.UTF8.GetBytes(CaptureCheckpointState().ToJson().ToJsonString());
        return ReplicaState.Pack(StepsDone, state, model.ToArray(), optimizer.ToArray());
    }

    /// <summary>Takes over a replica's state (<see cref="CaptureReplicaState"/> on the same run's rank).</summary>
    /// <exception cref="InvalidDataException">The state is damaged or not a replica state.</exception>
    public void RestoreReplicaState(ReplicaState replica)
    {
        ArgumentNullException.ThrowIfNull(replica);
        var (step, state, model, optimizer) = replica.Unpack();
        using var modelStream = new MemoryStream(model.ToArray(), writable: false);
        using var optimizerStream = new MemoryStream(optimizer.ToArray(), writable: false);
        var json = JsonNode.Parse(state.Span) as JsonObject ?? throw new InvalidDataException("a replica state without its state document");
        Restore(step, CheckpointState.FromJson(json, "(replica state)"), modelStream, optimizerStream);
        LogTookOver(_logger, step);
    }

    private CheckpointState CaptureCheckpointState() => new()
    {
        Epoch = _cursor.Epoch,
        BatchInEpoch = _cursor.BatchInEpoch,
        Rng = _boundaryRng ?? RngState.Capture(),
        Samples = _samples,
        TrainSeconds = _trainSeconds,
        SkippedSteps = _skippedSteps,
        History = [.. _history],
        DataOrder = Convert.ToHexString(_dataOrder),
        // What a user of the checkpoint needs without the run's files: the model and its tokenizer.
        ModelConfig = JsonSerializer.Deserialize<JsonElement>(Config.ToJson()),
        Tokenizer = _tokenizer.Name,
    };

    private void Restore(long step, CheckpointState state, Stream model, Stream optimizer)
    {
        ModelState.Load(Model, model);
        OptimizerState.Load((OptimizerHelper)_trainer.Optimizer, optimizer);
        _trainer.StepsDone = step;
        _cursor = new SamplerCursor(state.Epoch, state.BatchInEpoch);
        RngState.Restore(state.Rng);
        _boundaryRng = state.Rng;
        _samples = state.Samples;
        _trainSeconds = state.TrainSeconds;
        _skippedSteps = state.SkippedSteps;
        _dataOrder = Convert.FromHexString(state.DataOrder);
        _history.Clear();
        _history.AddRange(state.History);
    }

    /// <summary>Throws, naming the first tensor (parameter, or optimizer moment of one) holding a NaN or an infinity.</summary>
    private void EnsureFinite()
    {
        using var scope = torch.NewDisposeScope();
        foreach (var (name, parameter) in Model.named_parameters())
        {
            if (!torch.isfinite(parameter).all().item<bool>())
            {
                throw new InvalidOperationException($"not committing a checkpoint at step {StepsDone}: parameter {name} is not finite");
            }
        }

        // The optimizer's state is one entry per parameter, group after group (OptimizerFactory's decay / no-decay).
        var optimizer = (OptimizerHelper)_trainer.Optimizer;
        var names = Model.named_parameters().ToDictionary(p => p.parameter.Handle, p => p.name);
        var owners = optimizer.ParamGroups.OfType<ParamGroup>().SelectMany(g => g.Parameters).Select(p => names.GetValueOrDefault(p.Handle, "a parameter")).ToList();
        var states = optimizer.state_dict().State;
        for (int i = 0; i < states.Count; i++)
        {
            string owner = i < owners.Count ? owners[i] : "a parameter";
            foreach (var (moment, tensor) in MomentsOf(states[i]))
            {
                if (tensor is not null && !torch.isfinite(tensor).all().item<bool>())
                {
                    throw new InvalidOperationException($"not committing a checkpoint at step {StepsDone}: the optimizer's {moment} of {owner} is not finite");
                }
            }
        }
    }

    private static IEnumerable<(string Name, Tensor? Tensor)> MomentsOf(TorchSharp.Modules.OptimizerState state) => state switch
    {
        AdamW.State a => [("exp_avg", a.exp_avg), ("exp_avg_sq", a.exp_avg_sq), ("max_exp_avg_sq", a.max_exp_avg_sq)],
        SGD.State g => [("momentum_buffer", g.momentum_buffer)],
        _ => [],
    };
}

using DistClip.Cli.CommandLine;
using DistClip.Config;
using DistClip.Model;

namespace DistClip.Cli.Inference;

/// <summary>
/// Where a command's model comes from: a DistClip checkpoint (<c>--checkpoint</c>: a step directory,
/// or a run directory whose <c>latest</c> is used) or published CLIP weights (<c>--pretrained</c>,
/// with OpenAI's tokenizer, whose vocabulary ships with DistClip). The option table is defined here once for every command.
/// </summary>
internal sealed record ModelSourceOptions(
    string? Checkpoint,
    string? Pretrained,
    string? Model,
    string? Vocabulary,
    string Activation,
    string Device,
    int Threads)
{
    /// <summary>Environment variable naming a copy of OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c> when <c>--vocab</c> is not given (neither: the shipped copy).</summary>
    public const string VocabularyVariable = "DISTCLIP_CLIP_VOCAB";

    public static IReadOnlyList<OptionSpec> Specs { get; } =
    [
        new("checkpoint", "DIR", "a checkpoint step directory, or a run directory (its latest checkpoint)"),
        new("pretrained", "FILE", "published CLIP weights instead: a PyTorch state dict (.pt/.bin) or .safetensors"),
        new("model", "NAME|FILE", "the model config (default: the checkpoint's; for --pretrained, inferred from the weights)"),
        new("vocab", "FILE", $"your own copy of OpenAI's bpe_simple_vocab_16e6.txt.gz for --pretrained and clip-bpe checkpoints (default ${VocabularyVariable}, else the copy shipped with DistClip)"),
        new("activation", "NAME", "MLP activation of inferred --pretrained models: quick_gelu (OpenAI, default) or gelu (most LAION)"),
        new("device", "auto|cpu|cuda", "where the model runs (default auto)"),
        new("threads", "N", "libtorch threads (default: libtorch's choice)"),
    ];

    /// <summary>Reads the options; <paramref name="required"/> false lets a command fall back to a model named elsewhere (search: the index).</summary>
    public static ModelSourceOptions From(ParsedArguments args, bool required = true)
    {
        string? checkpoint = args.Value("checkpoint");
        string? pretrained = args.Value("pretrained");
        if (checkpoint is not null && pretrained is not null)
        {
            throw new UsageException($"{args.Command}: give --checkpoint or --pretrained, not both");
        }

        if (required && checkpoint is null && pretrained is null)
        {
            throw new UsageException($"{args.Command}: --checkpoint DIR (or --pretrained FILE) is required");
        }

        string activation = args.Value("activation") ?? Activations.QuickGelu;
        if (activation is not (Activations.QuickGelu or Activations.Gelu))
        {
            throw new UsageException($"{args.Command}: --activation must be {Activations.QuickGelu} or {Activations.Gelu}, got '{activation}'");
        }

        string device = args.Value("device") ?? "auto";
        if (device is not ("auto" or "cpu" or "cuda"))
        {
            throw new UsageException($"{args.Command}: --device must be auto, cpu or cuda, got '{device}'");
        }

        return new ModelSourceOptions(
            checkpoint,
            pretrained,
            args.Value("model"),
            args.Value("vocab") ?? NonEmpty(Environment.GetEnvironmentVariable(VocabularyVariable)),
            activation,
            device,
            args.Int("threads", 0, min: 0));
    }

    public bool Given => Checkpoint is not null || Pretrained is not null;

    /// <summary>A config already in hand (an index records its model's), used instead of <see cref="Model"/>.</summary>
    public ClipConfig? Config { get; init; }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}

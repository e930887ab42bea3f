using DistClip.Config;
using DistClip.Model.Layers;
using DistClip.Model.Text;
using DistClip.Model.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Embedding = DistClip.Model.Layers.Embedding;

namespace DistClip.Model;

/// <summary>
/// CLIP (Radford et al. 2021): an image tower and a text tower mapping into one embedding space,
/// and the learned temperature. Parameter names follow OpenAI's state dict (visual.*,
/// token_embedding, positional_embedding, transformer.*, ln_final, text_projection, logit_scale).
/// </summary>
public sealed class ClipModel : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> visual;

    // The text tower sits at the top level, as in OpenAI's CLIP, so their weights load by name.
    // (It cannot live in a submodule that shares these objects: Module.to() replaces a moved
    // Parameter only in the module that registered it.)
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly LayerNorm? ln_embed; // BERT only: normalises token + position embeddings
    private readonly TransformerStack transformer;
    private readonly LayerNorm ln_final;
    private readonly Parameter text_projection;

    private readonly Parameter logit_scale;
    private readonly Parameter? logit_bias; // the sigmoid loss's bias; absent for the softmax loss
    private readonly bool bert;

    /// <summary>Builds and initialises the model; the values depend only on torch.manual_seed.</summary>
    public ClipModel(ClipConfig config)
        : base("clip")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        var text = config.Text;
        bert = text.Type == TextConfig.Bert;

        visual = ImageEncoder.Create(config.Vision, config.EmbedDim);
        token_embedding = new Embedding(text.VocabSize, text.Width, std: text.TokenInitStd);
        positional_embedding = Init.NormalParameter(0.01, text.ContextLength, text.Width);
        ln_embed = bert ? nn.LayerNorm(text.Width) : null;
        transformer = new TransformerStack(new TransformerShape(text.Width, text.Layers, text.Heads, text.MlpRatio, text.Activation), causal: !bert);
        ln_final = nn.LayerNorm(text.Width);
        text_projection = Init.NormalParameter(Math.Pow(text.Width, -0.5), text.Width, config.EmbedDim);
        logit_scale = Init.ConstantParameter(config.InitLogitScale);
        logit_bias = config.InitLogitBias is double bias ? Init.ConstantParameter(bias) : null;
        RegisterComponents();
    }

    public ClipConfig Config { get; }

    /// <summary>The scalar t; logits are exp(t)·cos. Clamp it with <see cref="ClampLogitScale"/> after each step.</summary>
    public Parameter LogitScale => logit_scale;

    /// <summary>The sigmoid loss's scalar bias (logits are exp(t)·cos + bias); null when the config has none.</summary>
    public Parameter? LogitBias => logit_bias;

    /// <summary>
    /// The text tower's [vocab, width] token table. Its gradient is zero outside the rows of the token
    /// ids a batch holds, which lets a distributed step sum just those rows.
    /// </summary>
    public Parameter TokenEmbedding => token_embedding.Weight;

    /// <summary>
    /// Whether backward gives <see cref="TokenEmbedding"/> a row-sparse gradient, added into its
    /// existing dense gradient, instead of a dense table-sized one (the same sums, without a 51 MB
    /// temporary per step at CLIP's vocabulary). Off by default; a caller that turns it on keeps the
    /// table's gradient defined and dense before every backward (the trainer does).
    /// </summary>
    public bool SparseTokenGradient
    {
        get => token_embedding.SparseGradient;
        set => token_embedding.SparseGradient = value;
    }

    /// <param name="images">[N, C, H, W] float32, C/H/W as in the config.</param>
    /// <returns>[N, EmbedDim], not normalised.</returns>
    public Tensor EncodeImage(Tensor images)
    {
        CheckImages(images);
        return visual.call(images);
    }

    /// <summary>
    /// <see cref="EncodeImage(Tensor)"/>, its graph cut into <see cref="ImageSegments"/> by
    /// <paramref name="cuts"/> where the image tower supports it (ViT); otherwise uncut.
    /// </summary>
    public Tensor EncodeImage(Tensor images, BackwardCuts? cuts)
    {
        CheckImages(images);
        return cuts is not null && visual is VisionTransformer vit ? vit.Forward(images, cuts) : visual.call(images);
    }

    /// <summary>
    /// The image tower's parameters by the segments <see cref="EncodeImage(Tensor, BackwardCuts)"/>
    /// cuts it into, top first (a ViT: 2 per block and one for the embeddings; other towers: one).
    /// Together they are <see cref="TowerParameters"/>' image list.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<Parameter>> ImageSegments() =>
        visual is VisionTransformer vit ? vit.Segments() : [[.. visual.parameters()]];

    private void CheckImages(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var v = Config.Vision;
        if (images.ndim != 4 || images.shape[1] != v.Channels || images.shape[2] != v.ImageSize || images.shape[3] != v.ImageSize)
        {
            throw new ArgumentException(
                $"images must be [N, {v.Channels}, {v.ImageSize}, {v.ImageSize}], got [{string.Join(", ", images.shape)}]",
                nameof(images));
        }
    }

    /// <param name="tokens">[N, L] int64, L ≤ context length; the end-of-text token at lengths − 1.</param>
    /// <param name="lengths">[N] int64 in [1, L]; positions ≥ length are padding and never change the output.</param>
    /// <returns>[N, EmbedDim], not normalised.</returns>
    public Tensor EncodeText(Tensor tokens, Tensor lengths)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(lengths);
        if (tokens.ndim != 2 || tokens.shape[1] > Config.Text.ContextLength || tokens.dtype != ScalarType.Int64)
        {
            throw new ArgumentException(
                $"tokens must be int64 [N, L ≤ {Config.Text.ContextLength}], got {tokens.dtype} [{string.Join(", ", tokens.shape)}]",
                nameof(tokens));
        }

        if (lengths.ndim != 1 || lengths.shape[0] != tokens.shape[0] || lengths.dtype != ScalarType.Int64)
        {
            throw new ArgumentException($"lengths must be int64 [{tokens.shape[0]}], got {lengths.dtype} [{string.Join(", ", lengths.shape)}]", nameof(lengths));
        }

        var l = tokens.shape[1];
        var x = token_embedding.call(tokens) + positional_embedding[..(int)l]; // [N, L, W]
        Tensor? keyMask = null;
        if (bert)
        {
            x = ln_embed!.call(x);
            keyMask = TextPooling.KeyMask(lengths, l); // [N, L]
        }

        // Causal: a position sees only those before it, so tokens after EOT cannot reach it.
        // BERT: every position sees every real token and no padding.
        x = ln_final.call(transformer.call(x, keyMask)); // [N, L, W]
        var pooled = bert ? x[.., 0, ..] : TextPooling.AtEndOfText(x, lengths); // [N, W]
        return pooled.matmul(text_projection); // [N, E]
    }

    /// <summary>Keeps t ≤ MaxLogitScale (ln 100): in place, outside autograd; call after each optimizer step.</summary>
    public void ClampLogitScale()
    {
        using var noGrad = no_grad();
        using var max = Config.MaxLogitScale.ToScalar();
        logit_scale.clamp_(max: max);
    }

    /// <summary>
    /// Parameters split for AdamW as open_clip does: matrices and convolution kernels (embeddings
    /// included) decay; vectors and scalars (biases, norm gains, class token, logit_scale) do not,
    /// since shrinking them toward zero only fights the normalisation.
    /// </summary>
    public (IReadOnlyList<Parameter> Decay, IReadOnlyList<Parameter> NoDecay) WeightDecayGroups()
    {
        var all = parameters().ToList();
        return ([.. all.Where(p => p.ndim >= 2)], [.. all.Where(p => p.ndim < 2)]);
    }

    /// <summary>
    /// The parameters by where their gradients come from: the text tower with the temperature (and
    /// bias), whose gradients the loss stage hands over directly, and the image tower (visual.*). Each
    /// group's gradients are complete once its own backward pass ends, so a training step can send one
    /// while it computes the other. Each list keeps <see cref="nn.Module.parameters"/>' order.
    /// </summary>
    public (IReadOnlyList<Parameter> Text, IReadOnlyList<Parameter> Image) TowerParameters()
    {
        var named = named_parameters().ToList();
        return ([.. named.Where(p => !p.name.StartsWith("visual.", StringComparison.Ordinal)).Select(p => p.parameter)],
            [.. named.Where(p => p.name.StartsWith("visual.", StringComparison.Ordinal)).Select(p => p.parameter)]);
    }

    /// <summary>Number of trainable scalars (buffers such as BatchNorm statistics excluded).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());
}

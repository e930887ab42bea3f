namespace DistClip.Config;

/// <summary>The contrastive loss a run trains with.</summary>
public enum LossKind
{
    /// <summary>CLIP's symmetric softmax cross-entropy (InfoNCE) over the global batch.</summary>
    Softmax,

    /// <summary>SigLIP's pairwise sigmoid loss, with a learnable bias (Zhai et al., 2023).</summary>
    Siglip,
}

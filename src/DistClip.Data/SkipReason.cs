namespace DistClip.Data;

/// <summary>Why a sample was left out of training.</summary>
public enum SkipReason
{
    UndecodableImage,
    ImageTooLarge,
    MissingCaption,
    MissingImage,
    TruncatedEntry,
    EmptyCaption,
}

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

    /// <summary>The image path names a directory, FIFO, device or socket: never opened (a FIFO would block).</summary>
    NotARegularFile,

    /// <summary>The image file exists but cannot be read (permissions, an I/O error).</summary>
    UnreadableImage,
}

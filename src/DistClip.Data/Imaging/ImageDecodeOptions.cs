namespace DistClip.Data;

/// <summary>
/// Bounds that refuse an image from its header, before any pixel memory is allocated, and that cap
/// what a decode may allocate. Only the first frame of an animated or multi-page image is decoded,
/// and metadata (text chunks, EXIF, ICC, XMP) is skipped unread, so a compressed text bomb costs nothing.
/// </summary>
public sealed record ImageDecodeOptions
{
    public static ImageDecodeOptions Default { get; } = new();

    /// <summary>Largest width × height decoded (default 64 megapixels, 192 MB as RGB).</summary>
    public long MaxPixels { get; init; } = 64_000_000;

    /// <summary>Largest width or height decoded.</summary>
    public int MaxSide { get; init; } = 16_384;

    /// <summary>Largest encoded file read into memory; a bigger member is skipped as too large without reading it.</summary>
    public long MaxEncodedBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>
    /// Largest single buffer the decoder may allocate, in megabytes (ImageSharp's allocation limit):
    /// a decode that would need more is refused and the sample skipped as too large.
    /// </summary>
    public int MaxAllocationMegabytes { get; init; } = 512;
}

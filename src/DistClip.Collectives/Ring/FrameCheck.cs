using System.Globalization;
using DistClip.Collectives.Transport;

namespace DistClip.Collectives.Ring;

internal static class FrameCheck
{
    /// <summary>The first header field that differs, generation first (a stale frame says so).</summary>
    public static (string Field, string Expected, string Actual)? Compare(FrameHeader expected, FrameHeader actual)
    {
        if (actual.Generation != expected.Generation)
        {
            return ("generation", Str(expected.Generation), Str(actual.Generation));
        }

        if (actual.Sequence != expected.Sequence)
        {
            return ("sequence", Str(expected.Sequence), Str(actual.Sequence));
        }

        if (actual.Operation != expected.Operation)
        {
            return ("operation", expected.Operation.ToString(), actual.Operation.ToString());
        }

        if (actual.Index != expected.Index)
        {
            return ("index", Str(expected.Index), Str(actual.Index));
        }

        if (actual.PayloadLength != expected.PayloadLength)
        {
            return ("length", Str(expected.PayloadLength), Str(actual.PayloadLength));
        }

        return null;
    }

    private static string Str(long value) => value.ToString(CultureInfo.InvariantCulture);
}

using System.Globalization;

namespace DistClip.Config;

/// <summary>Validation rules shared by the config records; each throws naming the field.</summary>
internal static class Check
{
    public static void Positive(string field, int value)
    {
        if (value <= 0)
        {
            throw new ConfigException(field, $"must be positive, got {value}");
        }
    }

    public static void OneOf(string field, string value, IReadOnlyCollection<string> allowed)
    {
        if (!allowed.Contains(value))
        {
            throw new ConfigException(field, $"'{value}' is not one of {string.Join(", ", allowed)}");
        }
    }

    public static void Divides(string field, int divisor, int value, string what)
    {
        if (value % divisor != 0)
        {
            throw new ConfigException(field, $"{what} {value} is not divisible by {divisor}");
        }
    }

    /// <summary>The shape rules of a pre-norm transformer stack (paths under <paramref name="prefix"/>).</summary>
    public static void TransformerShape(string prefix, int width, int layers, int heads, double mlpRatio, string activation)
    {
        Positive(prefix + "width", width);
        Positive(prefix + "layers", layers);
        Positive(prefix + "heads", heads);
        Divides(prefix + "heads", heads, width, "width");
        var hidden = width * mlpRatio;
        if (!(mlpRatio > 0) || Math.Abs(hidden - Math.Round(hidden)) > 1e-9)
        {
            var shown = mlpRatio.ToString(CultureInfo.InvariantCulture);
            throw new ConfigException(prefix + "mlp_ratio", $"{shown} must be positive and give a whole hidden width (width {width} × {shown})");
        }

        OneOf(prefix + "activation", activation, Activations.Names);
    }
}

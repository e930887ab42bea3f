using DistClip.Analyzers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace DistClip.Model.Tests;

/// <summary>
/// DC0001 (src/DistClip.Analyzers): a TorchSharp Scalar handed to a native call must be kept alive
/// through it. Each case compiles a small method against the real TorchSharp and runs the analyzer.
/// </summary>
public class ScalarLifetimeAnalyzerTests
{
    [Theory]
    [InlineData("return t.mul(0.5);")] // an implicit double → Scalar conversion
    [InlineData("return t.mul(0.5.ToScalar());")] // made in the argument, never disposed
    [InlineData("var s = 0.5.ToScalar(); return t.mul(s);")] // a plain local is dead after its last use
    [InlineData("return t.masked_fill(t.gt(given), double.NegativeInfinity);")]
    [InlineData("return t * 0.5;")] // TorchSharp's operator makes the Scalar
    [InlineData("return 2 - t;")]
    [InlineData("t += 1; return t;")]
    public void A_temporary_scalar_is_reported(string body)
    {
        var found = Diagnose(body);

        Assert.Equal([ScalarLifetimeAnalyzer.Id], found);
    }

    [Theory]
    [InlineData("using var s = 0.5.ToScalar(); return t.mul(s);")] // disposed at the end of the scope, after the call
    [InlineData("return t.mul(Kept);")] // a field
    [InlineData("return t.mul(given);")] // a parameter: its caller is checked
    [InlineData("return t.clamp(null, given);")] // no Scalar at all
    [InlineData("return t * t;")]
    [InlineData("return t.sum(ScalarType.Float64);")] // not a Scalar parameter
    public void A_kept_scalar_is_not_reported(string body)
    {
        Assert.Empty(Diagnose(body));
    }

    /// <summary>The analyzer's diagnostic ids for <paramref name="body"/> as the body of Probe.Run(Tensor t, Scalar given).</summary>
    private static string[] Diagnose(string body)
    {
        string source = $$"""
            using TorchSharp;
            using static TorchSharp.torch;

            public static class Probe
            {
                private static readonly Scalar Kept = 2.0.ToScalar();

                public static Tensor Run(Tensor t, Scalar given)
                {
                    {{body}}
                }
            }
            """;
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Select(path => MetadataReference.CreateFromFile(path));
        var compilation = CSharpCompilation.Create(
            "Probe", [CSharpSyntaxTree.ParseText(source)], references, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        // A case that does not compile would prove nothing.
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));
        var diagnostics = compilation.WithAnalyzers([new ScalarLifetimeAnalyzer()]).GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
        return [.. diagnostics.Select(d => d.Id)];
    }
}

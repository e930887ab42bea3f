using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace DistClip.Analyzers;

/// <summary>
/// DC0001: a <c>TorchSharp.Scalar</c> handed to TorchSharp must outlive the native call. TorchSharp
/// 0.107 reads the Scalar's handle and calls libtorch without keeping the Scalar alive
/// (no <c>GC.KeepAlive</c>), and a Scalar is freed by its finalizer when nothing disposes it. A
/// temporary (an implicit conversion such as <c>t.mul_(0.5)</c>, <c>x.ToScalar()</c> as an argument,
/// or a plain local after its last use) may therefore be finalized while libtorch still reads it: a
/// use after free that mostly throws "Expected false to be true" from <c>Scalar::toFloat</c> and
/// could just as well compute with another value. The operators between a Tensor and a number make
/// such a temporary inside TorchSharp. What keeps a Scalar alive: a <c>using</c> local (disposed at
/// the end of its scope, after the call), a field, or a parameter (whose caller is checked in turn).
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class ScalarLifetimeAnalyzer : DiagnosticAnalyzer
{
    public const string Id = "DC0001";

    private static readonly DiagnosticDescriptor Rule = new(
        Id,
        "A TorchSharp Scalar must outlive the native call it is passed to",
        "{0}: nothing keeps this Scalar alive during the native call, and its finalizer may free it mid-call; pass a 'using' local or a static readonly Scalar",
        "Reliability",
        DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "TorchSharp 0.107 does not keep a Scalar argument alive while libtorch reads it (docs/torchsharp.md, \"Scalar lifetimes\").");

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => ImmutableArray.Create(Rule);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            var tensor = start.Compilation.GetTypeByMetadataName("TorchSharp.torch+Tensor");
            if (scalar is null)
            {
                return;
            }

            start.RegisterOperationAction(c => CheckArgument(c, scalar), OperationKind.Argument);
            if (tensor is not null)
            {
                start.RegisterOperationAction(c => CheckOperator(c, tensor), OperationKind.Binary, OperationKind.CompoundAssignment);
            }
        });
    }

    private static void CheckArgument(OperationAnalysisContext context, INamedTypeSymbol scalar)
    {
        var argument = (IArgumentOperation)context.Operation;
        if (argument.Parameter is not { } parameter || argument.ArgumentKind == ArgumentKind.DefaultValue
            || !SymbolEqualityComparer.Default.Equals(parameter.Type, scalar) || IsKeptAlive(argument.Value))
        {
            return;
        }

        context.ReportDiagnostic(Diagnostic.Create(Rule, argument.Syntax.GetLocation(),
            $"argument '{parameter.Name}' of {parameter.ContainingSymbol.ToDisplayString(SymbolDisplayFormat.CSharpShortErrorMessageFormat)}"));
    }

    /// <summary>Tensor * 0.5, t += 1 and the like: TorchSharp's operator makes a Scalar of the number and drops it.</summary>
    private static void CheckOperator(OperationAnalysisContext context, INamedTypeSymbol tensor)
    {
        var method = context.Operation switch
        {
            IBinaryOperation b => b.OperatorMethod,
            ICompoundAssignmentOperation c => c.OperatorMethod,
            _ => null,
        };
        if (method is null || !SymbolEqualityComparer.Default.Equals(method.ContainingType, tensor) || method.Parameters.Length != 2
            || method.Parameters.All(p => SymbolEqualityComparer.Default.Equals(p.Type, tensor)))
        {
            return;
        }

        context.ReportDiagnostic(Diagnostic.Create(Rule, context.Operation.Syntax.GetLocation(),
            $"operator {method.Name.Replace("op_", string.Empty)} between a Tensor and a number (TorchSharp makes and drops a Scalar; call the method with a kept Scalar)"));
    }

    private static bool IsKeptAlive(IOperation value)
    {
        // A conversion that makes no new object (nullable, reference, identity) passes the same one on;
        // a user-defined one (double → Scalar) makes a temporary.
        while (value is IConversionOperation { OperatorMethod: null } conversion)
        {
            value = conversion.Operand;
        }

        return value switch
        {
            ILiteralOperation { ConstantValue: { HasValue: true, Value: null } } => true,
            IDefaultValueOperation => true,
            IFieldReferenceOperation => true,
            IParameterReferenceOperation => true,
            ILocalReferenceOperation local => local.Local.IsUsing,
            _ => false,
        };
    }
}

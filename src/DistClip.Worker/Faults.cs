using DistClip.Training;
using DistClip.Training.Faults;

namespace DistClip.Worker;

/// <summary>
/// The fault hook for tests (docs/architecture.md, "Fault injection for tests"): the worker, and
/// only the worker, reads <c>DISTCLIP_FAULTS</c> (a <see cref="FaultPlan"/>) and
/// <c>DISTCLIP_FAULTS_STATE</c> (the directory of once-per-run markers; default
/// <c>$TMPDIR/distclip-faults-RUNID</c>). Unset, nothing is injected and the step loop runs no hook.
/// </summary>
internal static class Faults
{
    public const string Variable = "DISTCLIP_FAULTS";
    public const string StateVariable = "DISTCLIP_FAULTS_STATE";

    /// <summary>The plan in the environment, read at start so that a typo stops the worker before it joins.</summary>
    /// <exception cref="FormatException">The variable breaks the grammar; the message names it.</exception>
    public static FaultPlan FromEnvironment()
    {
        string? text = Environment.GetEnvironmentVariable(Variable);
        try
        {
            return FaultPlan.Parse(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"{Variable}={text}: {e.Message}", e);
        }
    }

    /// <summary>The hooks one generation's training runs with: none for an empty plan.</summary>
    public static IStepHooks HooksFor(FaultPlan plan, string runId, int rank)
    {
        if (plan.IsEmpty)
        {
            return NoStepHooks.Instance;
        }

        string state = Environment.GetEnvironmentVariable(StateVariable) is { Length: > 0 } dir
            ? dir
            : Path.Combine(Path.GetTempPath(), "distclip-faults-" + runId);
        return new FaultInjector(plan, rank, state, line =>
        {
            Console.Error.WriteLine(line);
            Console.Error.Flush();
        });
    }
}

using System.Text.RegularExpressions;

namespace PgFirst.Core;

/// <summary>
/// One expiry-cleanup job for the maintenance runner: a SQL function of a module with the signature
/// <c>{schema}.&lt;function&gt;(p_batch_size integer, p_now timestamptz) RETURNS integer</c> that removes at most
/// <c>p_batch_size</c> rows expired at <c>p_now</c> and returns how many it removed.
/// </summary>
public sealed partial class PgMaintenanceTask
{
    /// <summary>
    /// Initializes a new instance of the <see cref="PgMaintenanceTask"/> class.
    /// </summary>
    /// <param name="module">The module that owns the function; its scripts name the one to apply when it is missing.</param>
    /// <param name="functionName">The unqualified function name, e.g. <c>cache_delete_expired</c>.</param>
    /// <exception cref="ArgumentException">The function name is not a plain lower-case identifier.</exception>
    public PgMaintenanceTask(PgSchemaModule module, string functionName)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrEmpty(functionName);
        if (!FunctionNameRegex().IsMatch(functionName))
        {
            throw new ArgumentException($"'{functionName}' is not a valid function name: use lower-case letters, digits and '_'.", nameof(functionName));
        }

        Module = module;
        FunctionName = functionName;
    }

    /// <summary>Gets the module that owns the function.</summary>
    public PgSchemaModule Module { get; }

    /// <summary>Gets the unqualified function name.</summary>
    public string FunctionName { get; }

    /// <summary>Gets the task name used in the lock, the bookkeeping row, logs and metrics: <c>module.function</c>.</summary>
    public string Name => Module.Name + "." + FunctionName;

    /// <inheritdoc />
    public override string ToString() => Name;

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex FunctionNameRegex();
}

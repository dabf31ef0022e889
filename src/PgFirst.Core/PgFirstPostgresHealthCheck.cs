using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgFirst.Core;

/// <summary>
/// Reports whether PostgreSQL answers and carries every PgFirst script this app needs.
/// </summary>
/// <remarks>
/// Unhealthy when the server cannot be reached or a script is pending; the description names the first pending
/// script. Costs one connection and two small queries.
/// </remarks>
public sealed class PgFirstPostgresHealthCheck : IHealthCheck
{
    private readonly PgSchemaInstaller _installer;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgFirstPostgresHealthCheck"/> class.
    /// </summary>
    /// <param name="installer">The installer that knows the schema and its modules.</param>
    public PgFirstPostgresHealthCheck(PgSchemaInstaller installer)
    {
        ArgumentNullException.ThrowIfNull(installer);
        _installer = installer;
    }

    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var data = new Dictionary<string, object> { ["schema"] = _installer.SchemaName };
        try
        {
            var pending = await _installer.GetPendingScriptsAsync(cancellationToken).ConfigureAwait(false);
            if (pending.Count == 0)
            {
                return HealthCheckResult.Healthy($"PostgreSQL answers and schema \"{_installer.SchemaName}\" is up to date.", data);
            }

            data["pending"] = string.Join(", ", pending.Select(s => s.SourcePath));
            return new HealthCheckResult(
                context.Registration.FailureStatus,
                $"Schema \"{_installer.SchemaName}\" lacks {pending.Count} script(s), first {pending[0].SourcePath}: " +
                "apply them (PgFirst:ApplySchemaOnStartup or ./pgfirst schema).",
                data: data);
        }
        catch (PgFirstSchemaException ex)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, ex.Message, ex, data);
        }
    }
}

using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

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
    private readonly NpgsqlDataSource? _dataSource;
    private readonly PgPoolerMode _pooler;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgFirstPostgresHealthCheck"/> class that checks the schema only.
    /// </summary>
    /// <param name="installer">The installer that knows the schema and its modules.</param>
    public PgFirstPostgresHealthCheck(PgSchemaInstaller installer)
    {
        ArgumentNullException.ThrowIfNull(installer);
        _installer = installer;
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="PgFirstPostgresHealthCheck"/> class that also reports Degraded when
    /// <paramref name="pooler"/> is <see cref="PgPoolerMode.None"/> but a pooler answers on <paramref name="dataSource"/>
    /// (see <see cref="PgPooler.DetectAsync"/>): behind a transaction pooler, prepared statements can run for another
    /// client.
    /// </summary>
    /// <param name="installer">The installer that knows the schema and its modules.</param>
    /// <param name="dataSource">The data source PgFirst uses.</param>
    /// <param name="pooler">The configured pooler mode.</param>
    public PgFirstPostgresHealthCheck(PgSchemaInstaller installer, NpgsqlDataSource dataSource, PgPoolerMode pooler)
        : this(installer)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        _dataSource = dataSource;
        _pooler = pooler;
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
                if (_dataSource is not null && _pooler == PgPoolerMode.None && await PgPooler.DetectAsync(_dataSource, cancellationToken).ConfigureAwait(false))
                {
                    return HealthCheckResult.Degraded(
                        $"PostgreSQL answers through a connection pooler (its backend key is not the server's), but {PgPooler.SettingName} " +
                        "is None: behind a transaction pooler prepared statements can run for another client. Set it to Transaction " +
                        "(or Session for a session pooler).",
                        data: data);
                }

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

using Microsoft.Extensions.Diagnostics.HealthChecks;
using PgFirst.Core;

namespace PgSessions;

/// <summary>
/// Reports whether the session backend answers and its schema is in place.
/// </summary>
public sealed class PgSessionsHealthCheck : IHealthCheck
{
    private readonly IPgSessionBackend _backend;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgSessionsHealthCheck"/> class.
    /// </summary>
    /// <param name="backend">The backend to check.</param>
    public PgSessionsHealthCheck(IPgSessionBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _backend = backend;
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        PgStoreProbe.CheckAsync(context, $"session store ({_backend.GetType().Name})", _backend.PingAsync, cancellationToken);
}

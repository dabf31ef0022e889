using Microsoft.Extensions.Diagnostics.HealthChecks;
using PgFirst.Core;

namespace PgRateLimit;

/// <summary>
/// Reports whether the rate-limit store answers and, on PostgreSQL, its schema is in place. It counts nothing, so it
/// never uses up a partition's permits.
/// </summary>
public sealed class PgRateLimitHealthCheck : IHealthCheck
{
    private readonly IPgRateLimitStore _store;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgRateLimitHealthCheck"/> class.
    /// </summary>
    /// <param name="store">The store to check.</param>
    public PgRateLimitHealthCheck(IPgRateLimitStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        PgStoreProbe.CheckAsync(context, $"rate-limit store ({_store.GetType().Name})", _store.PingAsync, cancellationToken);
}

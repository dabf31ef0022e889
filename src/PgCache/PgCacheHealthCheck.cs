using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgCache;

/// <summary>
/// Reports whether the cache answers a read, on whichever backend it runs.
/// </summary>
public sealed class PgCacheHealthCheck : IHealthCheck
{
    private const string ProbeTenant = "pgfirst-health";
    private const string ProbeKey = "pgcache-health-probe";

    private readonly IPgDistributedCache _cache;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgCacheHealthCheck"/> class.
    /// </summary>
    /// <param name="cache">The cache to probe.</param>
    public PgCacheHealthCheck(IPgDistributedCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        _cache = cache.ForTenant(ProbeTenant);
    }

    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            await _cache.GetAsync(ProbeKey, cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy("The cache answers reads.");
        }
        catch (Exception ex) when (ex is PgCacheException or PgFirst.Core.PgFirstSchemaException)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, ex.Message, ex);
        }
    }
}

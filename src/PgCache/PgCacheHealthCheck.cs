using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgCache;

/// <summary>
/// Reports whether the cache answers a read, on whichever backend it runs; degraded while its near cache is flushed
/// and bypassed (listener lost or heartbeat late).
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
            if (_cache is PgDistributedCache { NearCache: { } near } && !await ServingSoonAsync(near, cancellationToken).ConfigureAwait(false))
            {
                // The store answers, so reads are correct; they are just all round trips until the listener is back.
                return HealthCheckResult.Degraded(near.IsListening
                    ? $"The cache answers reads; its near cache is bypassed: the heartbeat on {near.Channel} is late."
                    : $"The cache answers reads; its near cache is bypassed: not listening on {near.Channel}.");
            }

            return HealthCheckResult.Healthy("The cache answers reads.");
        }
        catch (Exception ex) when (ex is PgCacheException or PgFirst.Core.PgFirstSchemaException)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, ex.Message, ex);
        }
    }

    // A near cache that has just started (or re-subscribed) serves within one heartbeat: worth a short wait.
    private static async Task<bool> ServingSoonAsync(PgNearCache near, CancellationToken cancellationToken)
    {
        if (near.IsServing)
        {
            return true;
        }

        try
        {
            await near.WaitUntilServingAsync(cancellationToken).WaitAsync(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }
}

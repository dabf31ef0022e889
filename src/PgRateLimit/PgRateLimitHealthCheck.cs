using Microsoft.Extensions.Diagnostics.HealthChecks;

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
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            await _store.PingAsync(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"The rate-limit store ({_store.GetType().Name}) answers.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"The rate-limit store ({_store.GetType().Name}) failed: {ex.Message}", ex);
        }
    }
}

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
    private readonly Internal.PgRateLimitRuntime? _runtime;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgRateLimitHealthCheck"/> class.
    /// </summary>
    /// <param name="store">The store to check.</param>
    public PgRateLimitHealthCheck(IPgRateLimitStore store)
        : this(store, null)
    {
    }

    internal PgRateLimitHealthCheck(IPgRateLimitStore store, Internal.PgRateLimitRuntime? runtime)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        _runtime = runtime;
    }

    /// <inheritdoc />
    /// <remarks>Until the start-up warm-up has succeeded (<see cref="PgRateLimitOptions.WarmUpConnections"/>), reports the failure status: not ready for traffic.</remarks>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_runtime is { IsWarm: false })
        {
            return Task.FromResult(new HealthCheckResult(
                context.Registration.FailureStatus,
                $"rate-limit store ({_store.GetType().Name}): warming up, its connections are not open and ready yet"));
        }

        return PgStoreProbe.CheckAsync(context, $"rate-limit store ({_store.GetType().Name})", _store.PingAsync, cancellationToken);
    }
}

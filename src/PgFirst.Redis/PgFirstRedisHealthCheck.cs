using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace PgFirst.Redis;

/// <summary>
/// Reports whether Redis answers a PING on the shared connection.
/// </summary>
public sealed class PgFirstRedisHealthCheck : IHealthCheck
{
    private readonly IConnectionMultiplexer _connection;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgFirstRedisHealthCheck"/> class.
    /// </summary>
    /// <param name="connection">The shared Redis connection; not disposed by the check.</param>
    public PgFirstRedisHealthCheck(IConnectionMultiplexer connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _connection = connection;
    }

    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            var latency = await _connection.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"Redis answers PING in {latency.TotalMilliseconds:F1} ms.");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return new HealthCheckResult(
                context.Registration.FailureStatus,
                $"Redis at {_connection.Configuration} does not answer: {ex.Message}",
                ex);
        }
    }
}

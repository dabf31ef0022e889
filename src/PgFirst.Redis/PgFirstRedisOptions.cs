namespace PgFirst.Redis;

/// <summary>
/// Configures the Redis connection that the Redis mode of every PgFirst module shares.
/// </summary>
public sealed class PgFirstRedisOptions
{
    /// <summary>
    /// Gets or sets the StackExchange.Redis configuration string, e.g. <c>127.0.0.1:6379</c>.
    /// </summary>
    /// <value>The default is <see langword="null"/>; required unless an <c>IConnectionMultiplexer</c> is registered.</value>
    public string? Configuration { get; set; }

    /// <summary>
    /// Gets or sets the prefix of every key PgFirst writes, so several apps (or tests) can share one Redis.
    /// </summary>
    /// <value>The default is <c>pgfirst:</c>. Must not be empty, nor contain whitespace.</value>
    public string KeyPrefix { get; set; } = "pgfirst:";
}

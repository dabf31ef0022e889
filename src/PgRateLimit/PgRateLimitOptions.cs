namespace PgRateLimit;

/// <summary>
/// How the counter table survives a crash.
/// </summary>
public enum PgRateLimitDurability
{
    /// <summary>An UNLOGGED table: no WAL per decision; counters restart from zero after a crash or failover. The default.</summary>
    Unlogged = 0,

    /// <summary>An ordinary, WAL-logged table: counters survive crashes and are replicated.</summary>
    Logged = 1,
}

/// <summary>
/// Configures the rate-limit store shared by every PgRateLimit policy.
/// </summary>
public sealed class PgRateLimitOptions
{
    /// <summary>
    /// Gets or sets the durability of the counter table, used when the schema is created.
    /// </summary>
    /// <value>The default is <see cref="PgRateLimitDurability.Unlogged"/>.</value>
    public PgRateLimitDurability Durability { get; set; } = PgRateLimitDurability.Unlogged;

    /// <summary>
    /// Gets or sets how many store connections are opened and made ready at start-up, before the app takes traffic
    /// (the server starts after the warm-up, or after <see cref="WarmUpTimeout"/>). A cold pool makes the first burst
    /// of decisions wait for new connections, past the policies' timeout. The readiness check
    /// (<c>AddPgRateLimit()</c>) reports unhealthy until the warm-up has succeeded. 0 turns the warm-up off.
    /// </summary>
    /// <value>The default is 16. Must be between 0 and 1,000; at most the data source's <c>Max Pool Size</c> are opened.</value>
    public int WarmUpConnections { get; set; } = 16;

    /// <summary>
    /// Gets or sets how long start-up waits for the warm-up. If the store is not ready by then (down, or slow), the app
    /// starts anyway, decisions follow the policies' failure mode, and the warm-up goes on in the background until it
    /// succeeds.
    /// </summary>
    /// <value>The default is 10 seconds. Must be between 1 second and 5 minutes.</value>
    public TimeSpan WarmUpTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

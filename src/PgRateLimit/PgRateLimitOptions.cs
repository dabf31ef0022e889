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
}

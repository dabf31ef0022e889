using PgFirst.Core;

namespace PgCache;

/// <summary>
/// How the cache table survives a crash.
/// </summary>
public enum PgCacheDurability
{
    /// <summary>
    /// An UNLOGGED table: writes skip the WAL and are several times cheaper, but the table is emptied after a crash or
    /// an unclean shutdown and is not on streaming replicas. The default, and right for a cache.
    /// </summary>
    Unlogged = 0,

    /// <summary>An ordinary, WAL-logged table: survives crashes and is replicated, at the cost of WAL on every write.</summary>
    Logged = 1,
}

/// <summary>
/// Configures <see cref="PgDistributedCache"/> and its Redis twin. The schema, data source and tenant come from
/// <see cref="PgFirst.Core.PgFirstOptions"/>.
/// </summary>
public sealed class PgCacheOptions
{
    /// <summary>The longest key accepted, in UTF-16 code units.</summary>
    public const int MaxKeyLength = 8192;

    /// <summary>The longest tag accepted, in UTF-16 code units.</summary>
    public const int MaxTagLength = 256;

    /// <summary>
    /// Gets or sets the durability of the cache table, used when the schema is created.
    /// </summary>
    /// <value>The default is <see cref="PgCacheDurability.Unlogged"/>.</value>
    public PgCacheDurability Durability { get; set; } = PgCacheDurability.Unlogged;

    /// <summary>
    /// Gets or sets the coarsest step by which a read extends a sliding entry. A read writes the new expiry only when
    /// it moves it forward by at least the smaller of this value and a tenth of the sliding window; so a sliding entry
    /// is written at most once per step however often it is read, and may expire up to one step early.
    /// </summary>
    /// <value>The default is 1 minute. Must be between 0 (refresh on every read) and 1 hour.</value>
    public TimeSpan SlidingRefreshGranularity { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Gets or sets the time one operation may take on the server before it is cancelled with an error.
    /// </summary>
    /// <value>The default is 5 seconds. Must be between 1 second and 10 minutes (whole seconds on PostgreSQL).</value>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets a value indicating whether reads turn transient store errors (connection refused or lost,
    /// timeouts) into misses, logged (event 1001) and counted, instead of throwing. Writes and removals always throw.
    /// </summary>
    /// <value>The default is <see langword="false"/>: errors propagate as <see cref="PgCacheException"/>.</value>
    public bool FailSafe { get; set; }

    /// <summary>
    /// Gets or sets whether gets may read from a read replica (<c>PgFirst:Replicas</c>). A replica read that finds a
    /// sliding entry due for its refresh reads it again on the primary, which extends it; writes always go to the
    /// primary.
    /// </summary>
    /// <value>
    /// The default is <see cref="PgReadConsistency.Strong"/> (the primary). Any other level needs
    /// <see cref="Durability"/> <see cref="PgCacheDurability.Logged"/> (an UNLOGGED table cannot be read on a standby)
    /// and at least one replica.
    /// </value>
    public PgReadConsistency ReadConsistency { get; set; } = PgReadConsistency.Strong;

    /// <summary>
    /// Gets or sets the largest replay lag of a replica that gets may read from; a replica further behind is skipped.
    /// </summary>
    /// <value>The default is 1 second. Must be positive.</value>
    public TimeSpan MaxReplicaLag { get; set; } = TimeSpan.FromSeconds(1);
}

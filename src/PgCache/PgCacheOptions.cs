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

    /// <summary>
    /// Gets the near cache: an in-process copy of recent reads, consulted before the store and kept coherent across
    /// instances through the store's own invalidation channel. Off by default.
    /// </summary>
    public PgNearCacheOptions NearCache { get; } = new();
}

/// <summary>
/// Configures the near cache of <see cref="PgDistributedCache"/> (<c>PgCache:NearCache</c>).
/// </summary>
/// <remarks>
/// The consistency rule: a near hit never returns a value that a write committed more than
/// <see cref="MaxStaleness"/> earlier (on any instance) replaced or removed. In normal operation an instance drops its
/// copy when the write's invalidation arrives (about a millisecond on a LAN); when its listener is disconnected or its
/// heartbeat is late, the near cache is flushed and bypassed until the listener has caught up.
/// </remarks>
public sealed class PgNearCacheOptions
{
    /// <summary>Gets or sets a value indicating whether the near cache is on.</summary>
    /// <value>The default is <see langword="false"/>.</value>
    public bool Enabled { get; set; }

    /// <summary>Gets or sets the most entries kept in memory.</summary>
    /// <value>The default is 10,000. Must be between 1 and 10,000,000.</value>
    public int MaxEntries { get; set; } = 10_000;

    /// <summary>Gets or sets the most value bytes kept in memory.</summary>
    /// <value>The default is 64 MiB. Must be between 1 KiB and 16 GiB.</value>
    public long MaxBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Gets or sets the largest value kept in memory; larger ones are always read from the store.</summary>
    /// <value>The default is 256 KiB. Must be positive and at most <see cref="MaxBytes"/>.</value>
    public int MaxValueBytes { get; set; } = 256 * 1024;

    /// <summary>Gets or sets how long one copy may be served from memory before it is read from the store again, whatever its own expiry.</summary>
    /// <value>The default is 5 minutes. Must be between 1 second and 1 day.</value>
    public TimeSpan MaxLocalLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Gets or sets the bound on staleness: the near cache serves only while its own heartbeat, sent through the store
    /// every quarter of this time, has come back within it, which proves every invalidation committed before it was
    /// received.
    /// </summary>
    /// <value>The default is 2 seconds. Must be between 100 milliseconds and 1 minute.</value>
    public TimeSpan MaxStaleness { get; set; } = TimeSpan.FromSeconds(2);
}

using System.Buffers;
using PgFirst.Core;

namespace PgCache;

/// <summary>
/// The store under <see cref="PgDistributedCache"/>: PostgreSQL (<see cref="PostgresCacheBackend"/>) or Redis
/// (<c>PgFirst.Redis</c>). A backend implements only the store; the cache in front of it validates every argument,
/// resolves the tenant, computes expiry from the one clock, applies the fail-safe policy and records metrics and
/// logs, the same for every backend. Implementations must pass the cache conformance suite.
/// </summary>
/// <remarks>
/// Methods that take <c>async</c> serve both the synchronous and asynchronous members of
/// <see cref="Microsoft.Extensions.Caching.Distributed.IDistributedCache"/>: with <see langword="false"/> they do
/// synchronous I/O only and return an already completed task. Keys and tags arrive validated; key arrays hold no
/// duplicates.
/// </remarks>
public interface IPgCacheBackend
{
    /// <summary>Gets the backend's name as metrics tag it (<c>pgfirst.backend</c>): <c>postgresql</c>, <c>redis</c>.</summary>
    string Name { get; }

    /// <summary>Reads one live entry; a sliding one is extended when its refresh is due.</summary>
    /// <param name="read">The tenant, the time and the refresh step.</param>
    /// <param name="key">The key.</param>
    /// <param name="async">Whether to do asynchronous I/O.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The value, or <see langword="null"/> on a miss.</returns>
    ValueTask<byte[]?> GetAsync(PgCacheRead read, string key, bool async, CancellationToken cancellationToken);

    /// <summary>
    /// Reads one live entry with its expiry and tags, as <see cref="GetAsync"/> (a sliding one is extended when due, and
    /// the expiry returned is the extended one), always on the primary: the near cache keeps what this returns.
    /// </summary>
    /// <param name="read">The tenant, the time and the refresh step.</param>
    /// <param name="key">The key.</param>
    /// <param name="async">Whether to do asynchronous I/O.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The entry, or <see langword="null"/> on a miss.</returns>
    ValueTask<PgCacheEntry?> GetEntryAsync(PgCacheRead read, string key, bool async, CancellationToken cancellationToken);

    /// <summary>Reads one live entry into <paramref name="destination"/> (as <see cref="GetAsync"/>, without an intermediate array where the store allows).</summary>
    /// <param name="read">The tenant, the time and the refresh step.</param>
    /// <param name="key">The key.</param>
    /// <param name="destination">Where the value is written.</param>
    /// <param name="async">Whether to do asynchronous I/O.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The value's length, or <see langword="null"/> on a miss (nothing written).</returns>
    /// <exception cref="PgCacheException">The read failed after part of the value was written (not a miss, never fail-safe).</exception>
    ValueTask<int?> GetIntoAsync(PgCacheRead read, string key, IBufferWriter<byte> destination, bool async, CancellationToken cancellationToken);

    /// <summary>Reads the live entries among <paramref name="keys"/>, extending sliding ones whose refresh is due.</summary>
    /// <param name="read">The tenant, the time and the refresh step.</param>
    /// <param name="keys">The keys (at least one, no duplicates).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The hits by key.</returns>
    ValueTask<IReadOnlyDictionary<string, byte[]>> GetManyAsync(PgCacheRead read, string[] keys, CancellationToken cancellationToken);

    /// <summary>Writes one entry, replacing any with the same key (its value, expiry and tags).</summary>
    /// <param name="write">The tenant, the time, the expiry and the tags.</param>
    /// <param name="key">The key.</param>
    /// <param name="value">The value, in one or more segments; valid only until the returned task completes (a store that may still read it later copies it).</param>
    /// <param name="async">Whether to do asynchronous I/O.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the entry is stored.</returns>
    ValueTask SetAsync(PgCacheWrite write, string key, ReadOnlySequence<byte> value, bool async, CancellationToken cancellationToken);

    /// <summary>Writes entries with one expiry and one set of tags, atomically.</summary>
    /// <param name="write">The tenant, the time, the expiry and the tags.</param>
    /// <param name="keys">The keys (at least one, no duplicates).</param>
    /// <param name="values">The values, one per key.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the entries are stored.</returns>
    ValueTask SetManyAsync(PgCacheWrite write, string[] keys, byte[][] values, CancellationToken cancellationToken);

    /// <summary>Extends a live sliding entry from <paramref name="now"/>, never past its absolute expiration; any other entry is left alone.</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="key">The key.</param>
    /// <param name="now">The time.</param>
    /// <param name="async">Whether to do asynchronous I/O.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the entry is extended.</returns>
    ValueTask RefreshAsync(string tenantId, string key, DateTimeOffset now, bool async, CancellationToken cancellationToken);

    /// <summary>Removes entries by key.</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="keys">The keys (at least one, no duplicates).</param>
    /// <param name="invalidation">The near-cache invalidation to publish in the same transaction, or <see langword="null"/>.</param>
    /// <param name="async">Whether to do asynchronous I/O.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many entries were removed.</returns>
    ValueTask<long> RemoveAsync(string tenantId, string[] keys, string? invalidation, bool async, CancellationToken cancellationToken);

    /// <summary>Removes every entry of the tenant that carries <paramref name="tag"/>.</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="tag">The tag.</param>
    /// <param name="invalidation">The near-cache invalidation to publish in the same transaction, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many entries were removed.</returns>
    ValueTask<long> RemoveByTagAsync(string tenantId, string tag, string? invalidation, CancellationToken cancellationToken);

    /// <summary>Removes every entry of the tenant.</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="invalidation">The near-cache invalidation to publish in the same transaction, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many entries were removed.</returns>
    ValueTask<long> RemoveTenantAsync(string tenantId, string? invalidation, CancellationToken cancellationToken);

    /// <summary>
    /// Says what a store failure means, for the cache's failure policy: <see langword="null"/> for an exception that
    /// is not a store failure (it propagates as it is).
    /// </summary>
    /// <param name="exception">What an operation threw.</param>
    /// <returns>The failure, or <see langword="null"/>.</returns>
    PgCacheFailure? Classify(Exception exception);

    /// <summary>
    /// Creates the channel the near cache publishes its invalidations on and listens to (LISTEN/NOTIFY on PostgreSQL,
    /// pub/sub on Redis). Does no I/O; <see cref="IPgCacheInvalidationBus.Start"/> starts listening.
    /// </summary>
    /// <param name="sink">Receives what arrives and the listener's state.</param>
    /// <returns>The bus.</returns>
    /// <exception cref="PgFirstPoolerException">The store is behind a transaction pooler and no direct listen connection is configured.</exception>
    IPgCacheInvalidationBus CreateInvalidationBus(IPgCacheInvalidationSink sink);
}

/// <summary>
/// The invalidation channel of one near cache (<see cref="IPgCacheBackend.CreateInvalidationBus"/>). Writes publish
/// their invalidations in their own transaction (the <c>invalidation</c> of each write); this publishes the rest
/// (heartbeats) and listens.
/// </summary>
public interface IPgCacheInvalidationBus : IAsyncDisposable
{
    /// <summary>Gets the channel's name (a NOTIFY channel or a Redis pub/sub channel).</summary>
    string Channel { get; }

    /// <summary>Starts listening in the background, reconnecting when the listener is lost; a second call does nothing.</summary>
    void Start();

    /// <summary>Publishes one message on the channel, outside any write.</summary>
    /// <param name="payload">The message (at most 7,999 bytes).</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the store has accepted it.</returns>
    ValueTask PublishAsync(string payload, CancellationToken cancellationToken);
}

/// <summary>What an <see cref="IPgCacheInvalidationBus"/> tells the near cache.</summary>
public interface IPgCacheInvalidationSink
{
    /// <summary>The listener is subscribed: every message published from now on arrives, in the order the store accepted them.</summary>
    void OnSubscribed();

    /// <summary>The listener lost its subscription: messages published from now until the next <see cref="OnSubscribed"/> are lost.</summary>
    /// <param name="exception">What failed, or <see langword="null"/>.</param>
    void OnLost(Exception? exception);

    /// <summary>A message arrived (on the listener's thread: handled at once, without I/O).</summary>
    /// <param name="payload">The message.</param>
    void OnMessage(string payload);
}

/// <summary>An entry as the store holds it, for the near cache (<see cref="IPgCacheBackend.GetEntryAsync"/>).</summary>
/// <param name="Value">The value.</param>
/// <param name="Expiry">Its expiry after this read: <see cref="PgCacheExpiry.ExpiresAt"/> is the effective one.</param>
/// <param name="Tags">Its tags, or <see langword="null"/>.</param>
public sealed record PgCacheEntry(byte[] Value, PgCacheExpiry Expiry, string[]? Tags);

/// <summary>What a read needs besides its keys.</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="Now">The time (the cache's clock).</param>
/// <param name="RefreshGranularity">The largest step below which a read does not extend a sliding entry (<see cref="PgCacheOptions.SlidingRefreshGranularity"/>; a tenth of the sliding window when smaller).</param>
public readonly record struct PgCacheRead(string TenantId, DateTimeOffset Now, TimeSpan RefreshGranularity);

/// <summary>What a write needs besides its keys and values.</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="Now">The time (the cache's clock).</param>
/// <param name="Expiry">The entry's expiry, computed once from the entry options.</param>
/// <param name="Tags">The tags, or <see langword="null"/> for none.</param>
/// <param name="Invalidation">The near-cache invalidation the store publishes in the write's own transaction, or <see langword="null"/> (no near cache).</param>
public readonly record struct PgCacheWrite(string TenantId, DateTimeOffset Now, PgCacheExpiry Expiry, string[]? Tags, string? Invalidation = null);

/// <summary>An entry's expiry: the one effective time, and what it was computed from.</summary>
/// <param name="ExpiresAt">When it expires unless extended: min(absolute, now + sliding), or <see langword="null"/> for never.</param>
/// <param name="Sliding">The sliding expiration, or <see langword="null"/>.</param>
/// <param name="Absolute">The absolute expiration, or <see langword="null"/>.</param>
public readonly record struct PgCacheExpiry(DateTimeOffset? ExpiresAt, TimeSpan? Sliding, DateTimeOffset? Absolute);

/// <summary>A store failure as a backend classifies it (<see cref="IPgCacheBackend.Classify"/>).</summary>
/// <param name="Transient">Whether the store may answer again soon (unreachable, timed out, failing over): a read may then be served as a miss under <see cref="PgCacheOptions.FailSafe"/>.</param>
/// <param name="Reason">The reason, for the error message and the log (never a key or a value).</param>
/// <param name="Replacement">An exception to throw instead of <see cref="PgCacheException"/> (a missing schema, a pooler misconfiguration), or <see langword="null"/>.</param>
public sealed record PgCacheFailure(bool Transient, string Reason, Exception? Replacement = null);

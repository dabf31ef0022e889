using System.Buffers;

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
    /// <param name="async">Whether to do asynchronous I/O.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many entries were removed.</returns>
    ValueTask<long> RemoveAsync(string tenantId, string[] keys, bool async, CancellationToken cancellationToken);

    /// <summary>Removes every entry of the tenant that carries <paramref name="tag"/>.</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="tag">The tag.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many entries were removed.</returns>
    ValueTask<long> RemoveByTagAsync(string tenantId, string tag, CancellationToken cancellationToken);

    /// <summary>Removes every entry of the tenant.</summary>
    /// <param name="tenantId">The tenant.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>How many entries were removed.</returns>
    ValueTask<long> RemoveTenantAsync(string tenantId, CancellationToken cancellationToken);

    /// <summary>
    /// Says what a store failure means, for the cache's failure policy: <see langword="null"/> for an exception that
    /// is not a store failure (it propagates as it is).
    /// </summary>
    /// <param name="exception">What an operation threw.</param>
    /// <returns>The failure, or <see langword="null"/>.</returns>
    PgCacheFailure? Classify(Exception exception);
}

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
public readonly record struct PgCacheWrite(string TenantId, DateTimeOffset Now, PgCacheExpiry Expiry, string[]? Tags);

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

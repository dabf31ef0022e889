using Microsoft.Extensions.Caching.Distributed;

namespace PgCache;

/// <summary>
/// A distributed cache with tenants, batches, tags and typed JSON (see <see cref="PgCacheJsonExtensions"/>), on
/// PostgreSQL (<see cref="PgDistributedCache"/>) or on Redis (<c>PgFirst.Redis</c>), with the same behaviour on both.
/// </summary>
/// <remarks>
/// <para>
/// Every entry belongs to a tenant: by default the one <see cref="PgFirst.Core.ITenantContext"/> reports for the
/// current call, or a fixed one for the view returned by <see cref="ForTenant(string)"/>. A tenant never reads,
/// overwrites or removes another tenant's entries, whatever the key text.
/// </para>
/// <para>
/// Keys are compared exactly as given: case, trailing spaces and any Unicode are significant, and keys may be up to
/// <see cref="PgCacheOptions.MaxKeyLength"/> characters. Values are stored byte for byte; an empty array reads back
/// as an empty array. Tags are given with <see cref="PgCacheEntryOptions"/>.
/// </para>
/// </remarks>
public interface IPgDistributedCache : IBufferDistributedCache
{
    /// <summary>
    /// Gets the tenant the next operation of this instance applies to.
    /// </summary>
    string TenantId { get; }

    /// <summary>
    /// Returns a view of this cache bound to <paramref name="tenantId"/>, whatever the ambient tenant.
    /// </summary>
    /// <param name="tenantId">The tenant.</param>
    /// <returns>The tenant-scoped view; cheap, and sharing this cache's connections.</returns>
    /// <exception cref="ArgumentException"><paramref name="tenantId"/> is not a valid tenant id.</exception>
    IPgDistributedCache ForTenant(string tenantId);

    /// <summary>
    /// Reads many keys in one round trip.
    /// </summary>
    /// <param name="keys">The keys. Duplicates are read once; an empty list costs no round trip.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>The entries found, by key (ordinal comparison). Missing and expired keys are absent.</returns>
    Task<IReadOnlyDictionary<string, byte[]>> GetManyAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes many entries with the same options in one round trip.
    /// </summary>
    /// <param name="entries">The entries. When a key appears more than once, the last value wins.</param>
    /// <param name="options">The expiration (and tags, with <see cref="PgCacheEntryOptions"/>) of every entry.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>A task that completes when every entry is stored.</returns>
    /// <exception cref="ArgumentException">A key, a value or the options are invalid; nothing is written.</exception>
    Task SetManyAsync(IEnumerable<KeyValuePair<string, byte[]>> entries, DistributedCacheEntryOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes many keys in one round trip.
    /// </summary>
    /// <param name="keys">The keys. Duplicates and missing keys are ignored.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>The number of entries removed (expired ones included).</returns>
    Task<long> RemoveManyAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes every entry of the current tenant that carries <paramref name="tag"/>, on the server, in one statement.
    /// </summary>
    /// <param name="tag">The tag.</param>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>The number of entries removed.</returns>
    Task<long> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes every entry of the current tenant.
    /// </summary>
    /// <param name="cancellationToken">The token to cancel the operation.</param>
    /// <returns>The number of entries removed.</returns>
    Task<long> RemoveTenantAsync(CancellationToken cancellationToken = default);
}

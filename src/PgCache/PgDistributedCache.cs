using System.Buffers;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using PgCache.Internal;
using PgFirst.Core;

namespace PgCache;

// IDistributedCache has synchronous members by contract. Like Npgsql, one code path serves both: with async: false the
// backend does synchronous I/O only and its ValueTask is already complete when GetAwaiter().GetResult() reads it.
#pragma warning disable VSTHRD002, VSTHRD103, CA2012

/// <summary>
/// The <see cref="IDistributedCache"/> and <see cref="IBufferDistributedCache"/> of PgFirst, with tenants, batches and
/// tags (<see cref="IPgDistributedCache"/>) and typed JSON (<see cref="PgCacheJsonExtensions"/>): one front over a
/// store (<see cref="IPgCacheBackend"/>), PostgreSQL by default, Redis with <c>PgFirst.Redis</c>.
/// </summary>
/// <remarks>
/// <para>
/// The front validates every argument, resolves the tenant, computes every expiry from the injected
/// <see cref="TimeProvider"/> only, and records metrics and logs; the store does one round trip per operation. On
/// PostgreSQL every read is one prepared statement: an entry without sliding expiration is never written on read, a
/// sliding one is extended in the same statement at most once per refresh step (see
/// <see cref="PgCacheOptions.SlidingRefreshGranularity"/>) and never beyond its absolute expiration; every write is one
/// upsert.
/// </para>
/// <para>
/// Failure policy: store errors throw <see cref="PgCacheException"/> naming the operation and the reason (a missing
/// table throws <see cref="PgFirstSchemaException"/> naming the script to apply), unless
/// <see cref="PgCacheOptions.FailSafe"/> turns transient errors on reads into misses. The constructors do no I/O.
/// </para>
/// </remarks>
public sealed partial class PgDistributedCache : IPgDistributedCache, IDisposable, IAsyncDisposable
{
    private readonly Shared _shared;
    private readonly string? _tenantId;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgDistributedCache"/> class on PostgreSQL. Usually resolved from DI
    /// after <c>services.AddPgCache()</c>.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the cache.</param>
    /// <param name="pgFirstOptions">The shared options (schema, pooler mode).</param>
    /// <param name="options">The cache options.</param>
    /// <param name="tenantContext">The ambient tenant.</param>
    /// <param name="timeProvider">The single clock of every expiry.</param>
    /// <param name="meterFactory">The meter factory, or <see langword="null"/>.</param>
    /// <param name="logger">The logger, or <see langword="null"/>.</param>
    /// <param name="replicas">
    /// The read replicas gets may use under <see cref="PgCacheOptions.ReadConsistency"/>, or <see langword="null"/>
    /// (every read goes to <paramref name="dataSource"/>).
    /// </param>
    /// <exception cref="ArgumentException">Replica reads were asked for on an UNLOGGED table.</exception>
    public PgDistributedCache(
        NpgsqlDataSource dataSource,
        PgFirstOptions pgFirstOptions,
        PgCacheOptions options,
        ITenantContext tenantContext,
        TimeProvider timeProvider,
        IMeterFactory? meterFactory = null,
        ILogger<PgDistributedCache>? logger = null,
        PgReplicaRouter? replicas = null)
        : this(new PostgresCacheBackend(dataSource, pgFirstOptions, options, replicas, logger), options, tenantContext, timeProvider, meterFactory, logger)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PgDistributedCache"/> class over a store.</summary>
    /// <param name="backend">The store (PostgreSQL, Redis).</param>
    /// <param name="options">The cache options.</param>
    /// <param name="tenantContext">The ambient tenant.</param>
    /// <param name="timeProvider">The single clock of every expiry.</param>
    /// <param name="meterFactory">The meter factory, or <see langword="null"/>.</param>
    /// <param name="logger">The logger, or <see langword="null"/>.</param>
    public PgDistributedCache(
        IPgCacheBackend backend,
        PgCacheOptions options,
        ITenantContext tenantContext,
        TimeProvider timeProvider,
        IMeterFactory? meterFactory = null,
        ILogger<PgDistributedCache>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tenantContext);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _shared = new Shared(backend, options, tenantContext, timeProvider, meterFactory, logger).WithNearCache();
    }

    private PgDistributedCache(Shared shared, string tenantId)
    {
        _shared = shared;
        _tenantId = tenantId;
    }

    /// <summary>
    /// Gets the schema module of the cache (<c>sql/pgcache</c>) with an UNLOGGED table, for the installer and the
    /// maintenance runner. See <see cref="SchemaModuleFor(PgCacheDurability)"/>.
    /// </summary>
    public static PgSchemaModule SchemaModule { get; } = SchemaModuleFor(PgCacheDurability.Unlogged);

    /// <summary>Gets the maintenance task that deletes expired entries (<c>{schema}.cache_delete_expired</c>).</summary>
    public static PgMaintenanceTask CleanupTask { get; } = new(SchemaModule, "cache_delete_expired");

    /// <summary>Gets the store this cache runs on.</summary>
    public IPgCacheBackend Backend => _shared.Backend;

    /// <summary>Gets the near cache, or <see langword="null"/> when <see cref="PgNearCacheOptions.Enabled"/> is off.</summary>
    public PgNearCache? NearCache => _shared.Near;

    /// <summary>
    /// Returns the schema module of the cache with the table durability rendered as chosen.
    /// </summary>
    /// <param name="durability">The durability of the cache table.</param>
    /// <returns>The module.</returns>
    public static PgSchemaModule SchemaModuleFor(PgCacheDurability durability) =>
        PgSchemaModule.FromAssembly("pgcache", typeof(PgDistributedCache).Assembly).WithTokens(new Dictionary<string, string>
        {
            ["{cache_persistence}"] = durability switch
            {
                PgCacheDurability.Unlogged => "UNLOGGED",
                PgCacheDurability.Logged => "",
                _ => throw new ArgumentOutOfRangeException(nameof(durability), durability, "Unknown durability."),
            },
        });

    /// <inheritdoc />
    public string TenantId => _tenantId ?? _shared.AmbientTenant();

    /// <inheritdoc />
    public IPgDistributedCache ForTenant(string tenantId)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        return new PgDistributedCache(_shared, tenantId);
    }

    /// <inheritdoc />
    public byte[]? Get(string key)
    {
        CacheArguments.ValidateKey(key);
        return GetCoreAsync(key, async: false, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        CacheArguments.ValidateKey(key);
        return GetCoreAsync(key, async: true, token).AsTask();
    }

    /// <inheritdoc />
    public bool TryGet(string key, IBufferWriter<byte> destination)
    {
        CacheArguments.ValidateKey(key);
        ArgumentNullException.ThrowIfNull(destination);
        return TryGetCoreAsync(key, destination, async: false, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public ValueTask<bool> TryGetAsync(string key, IBufferWriter<byte> destination, CancellationToken token = default)
    {
        CacheArguments.ValidateKey(key);
        ArgumentNullException.ThrowIfNull(destination);
        return TryGetCoreAsync(key, destination, async: true, token);
    }

    /// <inheritdoc />
    public void Set(string key, byte[] value, DistributedCacheEntryOptions options)
    {
        CacheArguments.ValidateValue(value);
        SetCoreAsync(key, new ReadOnlySequence<byte>(value), options, async: false, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        CacheArguments.ValidateValue(value);
        return SetCoreAsync(key, new ReadOnlySequence<byte>(value), options, async: true, token).AsTask();
    }

    /// <inheritdoc />
    public void Set(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options) =>
        SetCoreAsync(key, value, options, async: false, CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc />
    public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options, CancellationToken token = default) =>
        SetCoreAsync(key, value, options, async: true, token);

    /// <inheritdoc />
    public void Refresh(string key)
    {
        CacheArguments.ValidateKey(key);
        RefreshCoreAsync(key, async: false, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public Task RefreshAsync(string key, CancellationToken token = default)
    {
        CacheArguments.ValidateKey(key);
        return RefreshCoreAsync(key, async: true, token).AsTask();
    }

    /// <inheritdoc />
    public void Remove(string key)
    {
        CacheArguments.ValidateKey(key);
        RemoveCoreAsync("remove", [key], async: false, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    public Task RemoveAsync(string key, CancellationToken token = default)
    {
        CacheArguments.ValidateKey(key);
        return RemoveCoreAsync("remove", [key], async: true, token).AsTask();
    }

    /// <inheritdoc />
    public async Task<IReadOnlyDictionary<string, byte[]>> GetManyAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        var unique = CacheArguments.ValidateKeys(keys);
        if (unique.Length == 0)
        {
            return new Dictionary<string, byte[]>(StringComparer.Ordinal);
        }

        var read = Read();
        Dictionary<string, byte[]>? near = null;
        if (_shared.Near is { } nearCache)
        {
            // Near hits are served from memory; the rest is one store read.
            var started = PgCacheMetrics.Start();
            List<string>? rest = null;
            foreach (var key in unique)
            {
                if (nearCache.Find(read.TenantId, key, read.Now, read.RefreshGranularity) is { } hit)
                {
                    (near ??= new Dictionary<string, byte[]>(unique.Length, StringComparer.Ordinal))[key] = hit.Value.AsSpan().ToArray();
                }
                else
                {
                    (rest ??= new List<string>(unique.Length)).Add(key);
                }
            }

            if (near is not null)
            {
                _shared.Metrics.Read(near.Values.Sum(v => (long)v.Length));
                if (rest is null)
                {
                    _shared.Metrics.Record("get_many", "near_hit", started);
                    return near;
                }

                unique = [.. rest];
            }
        }

        var found = await ExecuteAsync(
            "get_many",
            isRead: true,
            static (b, state, _, ct) => b.GetManyAsync(state.Read, state.Keys, ct),
            (Read: read, Keys: unique),
            async: true,
            cancellationToken).ConfigureAwait(false);
        if (found is null)
        {
            return near ?? new Dictionary<string, byte[]>(StringComparer.Ordinal);
        }

        _shared.Metrics.Read(found.Values.Sum(v => (long)v.Length));
        if (near is null)
        {
            return found;
        }

        foreach (var (key, value) in found)
        {
            near[key] = value;
        }

        return near;
    }

    /// <inheritdoc />
    public async Task SetManyAsync(IEnumerable<KeyValuePair<string, byte[]>> entries, DistributedCacheEntryOptions options, CancellationToken cancellationToken = default)
    {
        var (keys, values) = CacheArguments.ValidateEntries(entries);
        ArgumentNullException.ThrowIfNull(options);
        var tags = CacheArguments.ValidateTags(options);
        var now = _shared.Time.GetUtcNow();
        var expiry = CacheExpiry.Compute(options, now);
        if (keys.Length == 0)
        {
            return;
        }

        var tenant = TenantId;
        var write = new PgCacheWrite(tenant, now, expiry, tags, _shared.Near?.KeysMessage(tenant, keys));
        try
        {
            await ExecuteAsync(
                "set_many",
                isRead: false,
                static async (b, state, _, ct) =>
                {
                    await b.SetManyAsync(state.Write, state.Keys, state.Values, ct).ConfigureAwait(false);
                    return 0;
                },
                (Write: write, Keys: keys, Values: values),
                async: true,
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Invalidated(tenant, keys, write.Invalidation);
        }

        _shared.Metrics.Written(values.Sum(v => (long)v.Length));
    }

    /// <inheritdoc />
    public async Task<long> RemoveManyAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        var unique = CacheArguments.ValidateKeys(keys);
        return unique.Length == 0 ? 0 : await RemoveCoreAsync("remove_many", unique, async: true, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<long> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default)
    {
        CacheArguments.ValidateTag(tag);
        var tenant = TenantId;
        var near = _shared.Near;
        var invalidation = near?.TagMessage(tenant, tag);
        try
        {
            return await ExecuteAsync(
                "remove_by_tag",
                isRead: false,
                static (b, state, _, ct) => b.RemoveByTagAsync(state.Tenant, state.Tag, state.Invalidation, ct),
                (Tenant: tenant, Tag: tag, Invalidation: invalidation),
                async: true,
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (near is not null)
            {
                near.InvalidateTag(tenant, tag);
                near.Sent();
            }
        }
    }

    /// <inheritdoc />
    public async Task<long> RemoveTenantAsync(CancellationToken cancellationToken = default)
    {
        var tenant = TenantId;
        var near = _shared.Near;
        var invalidation = near?.TenantMessage(tenant);
        try
        {
            return await ExecuteAsync(
                "remove_tenant",
                isRead: false,
                static (b, state, _, ct) => b.RemoveTenantAsync(state.Tenant, state.Invalidation, ct),
                (Tenant: tenant, Invalidation: invalidation),
                async: true,
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (near is not null)
            {
                near.InvalidateTenant(tenant);
                near.Sent();
            }
        }
    }

    /// <summary>Stops the near cache's listener and releases the cache's own meter when it was created without a meter factory.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops the near cache's listener and releases the cache's own meter when it was created without a meter factory.</summary>
    /// <returns>A task that completes when stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        if (_tenantId is null)
        {
            if (_shared.Near is { } near)
            {
                await near.DisposeAsync().ConfigureAwait(false);
            }

            _shared.Metrics.Dispose();
        }
    }

    private PgCacheRead Read() => new(TenantId, _shared.Time.GetUtcNow(), _shared.Options.SlidingRefreshGranularity);

    private async ValueTask<byte[]?> GetCoreAsync(string key, bool async, CancellationToken cancellationToken)
    {
        if (_shared.Near is { } near)
        {
            return await NearGetAsync(near, key, async, cancellationToken).ConfigureAwait(false);
        }

        var value = await ExecuteAsync(
            "get",
            isRead: true,
            static (b, state, a, ct) => b.GetAsync(state.Read, state.Key, a, ct),
            (Read: Read(), Key: key),
            async,
            cancellationToken).ConfigureAwait(false);
        if (value is not null)
        {
            _shared.Metrics.Read(value.Length);
        }

        return value;
    }

    private async ValueTask<bool> TryGetCoreAsync(string key, IBufferWriter<byte> destination, bool async, CancellationToken cancellationToken)
    {
        if (_shared.Near is { } near)
        {
            var started = PgCacheMetrics.Start();
            var request = Read();
            if (near.Find(request.TenantId, key, request.Now, request.RefreshGranularity) is { } hit)
            {
                destination.Write(hit.Value);
                _shared.Metrics.Record("get", "near_hit", started);
                _shared.Metrics.Read(hit.Value.Length);
                return true;
            }

            var entry = await NearMissAsync(near, request, key, async, cancellationToken).ConfigureAwait(false);
            if (entry is null)
            {
                return false;
            }

            destination.Write(entry.Value);
            return true;
        }

        var length = await ExecuteAsync(
            "get",
            isRead: true,
            static (b, state, a, ct) => b.GetIntoAsync(state.Read, state.Key, state.Destination, a, ct),
            (Read: Read(), Key: key, Destination: destination),
            async,
            cancellationToken).ConfigureAwait(false);
        if (length is not { } read)
        {
            return false;
        }

        _shared.Metrics.Read(read);
        return true;
    }

    private async ValueTask SetCoreAsync(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options, bool async, CancellationToken cancellationToken)
    {
        CacheArguments.ValidateKey(key);
        ArgumentNullException.ThrowIfNull(options);
        var tags = CacheArguments.ValidateTags(options);
        var now = _shared.Time.GetUtcNow();
        var expiry = CacheExpiry.Compute(options, now);
        var tenant = TenantId;
        var near = _shared.Near;
        var write = new PgCacheWrite(tenant, now, expiry, tags, near?.KeysMessage(tenant, [key]));
        var stamp = near?.Stamp() ?? 0;
        var written = false;
        try
        {
            await ExecuteAsync(
                "set",
                isRead: false,
                static async (b, state, a, ct) =>
                {
                    await b.SetAsync(state.Write, state.Key, state.Value, a, ct).ConfigureAwait(false);
                    return 0;
                },
                (Write: write, Key: key, Value: value),
                async,
                cancellationToken).ConfigureAwait(false);
            written = true;
        }
        finally
        {
            if (near is not null)
            {
                // Written: this instance keeps what it wrote (its next read is a near hit). Failed: it may have
                // committed all the same, so the copy goes.
                if (written)
                {
                    near.OfferOwnWrite(tenant, key, value, expiry, tags, stamp, now);
                }
                else
                {
                    near.Invalidate(tenant, key, "invalidated");
                }

                near.Sent();
            }
        }

        _shared.Metrics.Written(value.Length);
    }

    private async ValueTask RefreshCoreAsync(string key, bool async, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "refresh",
            isRead: false,
            static async (b, state, a, ct) =>
            {
                await b.RefreshAsync(state.Tenant, state.Key, state.Now, a, ct).ConfigureAwait(false);
                return 0;
            },
            (Tenant: TenantId, Key: key, Now: _shared.Time.GetUtcNow()),
            async,
            cancellationToken).ConfigureAwait(false);

    private async ValueTask<long> RemoveCoreAsync(string operation, string[] keys, bool async, CancellationToken cancellationToken)
    {
        var tenant = TenantId;
        var invalidation = _shared.Near?.KeysMessage(tenant, keys);
        try
        {
            return await ExecuteAsync(
                operation,
                isRead: false,
                static (b, state, a, ct) => b.RemoveAsync(state.Tenant, state.Keys, state.Invalidation, a, ct),
                (Tenant: tenant, Keys: keys, Invalidation: invalidation),
                async,
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Invalidated(tenant, keys, invalidation);
        }
    }

    // A near hit costs no round trip: the value is copied out of memory (the caller owns what it gets). A miss reads
    // the entry with its expiry and tags, and keeps a copy unless an invalidation raced the read.
    private async ValueTask<byte[]?> NearGetAsync(PgNearCache near, string key, bool async, CancellationToken cancellationToken)
    {
        var started = PgCacheMetrics.Start();
        var read = Read();
        if (near.Find(read.TenantId, key, read.Now, read.RefreshGranularity) is { } hit)
        {
            _shared.Metrics.Record("get", "near_hit", started);
            _shared.Metrics.Read(hit.Value.Length);
            return hit.Value.AsSpan().ToArray();
        }

        return (await NearMissAsync(near, read, key, async, cancellationToken).ConfigureAwait(false))?.Value;
    }

    private async ValueTask<PgCacheEntry?> NearMissAsync(PgNearCache near, PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        var stamp = near.Stamp();
        var entry = await ExecuteAsync(
            "get",
            isRead: true,
            static (b, state, a, ct) => b.GetEntryAsync(state.Read, state.Key, a, ct),
            (Read: read, Key: key),
            async,
            cancellationToken).ConfigureAwait(false);
        if (entry is not null)
        {
            _shared.Metrics.Read(entry.Value.Length);
            near.Offer(read.TenantId, key, entry, stamp, read.Now);
        }

        return entry;
    }

    // After a write returns (or fails: it may have committed), this instance's own copies go at once, and any read
    // already on its way back cannot fill them again; other instances drop theirs when the write's message arrives.
    private void Invalidated(string tenant, string[] keys, string? invalidation)
    {
        if (_shared.Near is { } near)
        {
            foreach (var key in keys)
            {
                near.Invalidate(tenant, key, "invalidated");
            }

            if (invalidation is not null)
            {
                near.Sent();
            }
        }
    }

    // Runs one store operation with the metrics, error translation and fail-safe policy in one place, the same for
    // every backend. Synchronous callers pass async: false and get an already completed task.
    private async ValueTask<TResult?> ExecuteAsync<TState, TResult>(
        string operation,
        bool isRead,
        Func<IPgCacheBackend, TState, bool, CancellationToken, ValueTask<TResult>> body,
        TState state,
        bool async,
        CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = PgCacheMetrics.Start();
        try
        {
            var result = await body(_shared.Backend, state, async, cancellationToken).ConfigureAwait(false);
            _shared.Metrics.Record(operation, ResultName(isRead, result), started);
            return result;
        }
        catch (Exception ex) when (ex is not PgCacheException && !cancellationToken.IsCancellationRequested && _shared.Backend.Classify(ex) is { } failure)
        {
            if (failure.Replacement is { } replacement)
            {
                _shared.Metrics.Record(operation, "error", started);
                LogOperationFailed(_shared.Logger, replacement, operation, failure.Reason);
                throw replacement;
            }

            if (isRead && _shared.Options.FailSafe && failure.Transient)
            {
                _shared.Metrics.Record(operation, "failsafe_miss", started);
                LogFailSafeMiss(_shared.Logger, ex, operation, failure.Reason);
                return default;
            }

            _shared.Metrics.Record(operation, "error", started);
            LogOperationFailed(_shared.Logger, ex, operation, failure.Reason);
            throw new PgCacheException($"PgCache {operation} failed: {failure.Reason}", ex) { Operation = operation };
        }
        catch (PgCacheException)
        {
            _shared.Metrics.Record(operation, "error", started);
            throw;
        }
    }

    private static string ResultName<TResult>(bool isRead, TResult result) => !isRead
        ? "ok"
        : result switch
        {
            null => "miss",
            IReadOnlyDictionary<string, byte[]> many when many.Count == 0 => "miss",
            _ => "hit",
        };

    // What every tenant view of one cache shares.
    private sealed class Shared(
        IPgCacheBackend backend,
        PgCacheOptions options,
        ITenantContext tenantContext,
        TimeProvider timeProvider,
        IMeterFactory? meterFactory,
        ILogger? logger)
    {
        public IPgCacheBackend Backend { get; } = backend;

        public PgCacheOptions Options { get; } = options;

        public TimeProvider Time { get; } = timeProvider;

        public PgCacheMetrics Metrics { get; } = new(meterFactory, backend.Name);

        public ILogger Logger { get; } = logger ?? NullLogger.Instance;

        public PgNearCache? Near { get; private set; }

        public Shared WithNearCache()
        {
            if (Options.NearCache.Enabled)
            {
                Near = new PgNearCache(Backend, Options.NearCache, Metrics, Logger);
            }

            return this;
        }

        public string AmbientTenant()
        {
            var tenant = tenantContext.TenantId;
            return PgTenantId.IsValid(tenant)
                ? tenant
                : throw new InvalidOperationException($"The registered {nameof(ITenantContext)} returned an invalid tenant id: {PgTenantId.Rule}");
        }
    }
}

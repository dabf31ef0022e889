using System.Buffers;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PgCache;
using PgCache.Internal;
using PgFirst.Core;
using PgFirst.Redis.Internal;
using StackExchange.Redis;

namespace PgFirst.Redis;

// IDistributedCache has synchronous members by contract. As in PgDistributedCache, one code path serves both: with
// async: false it makes synchronous StackExchange.Redis calls only, and its ValueTask is already complete when
// GetAwaiter().GetResult() reads it.
#pragma warning disable VSTHRD002, VSTHRD103, CA2012

/// <summary>
/// The Redis twin of <see cref="PgDistributedCache"/>: the same <see cref="IPgDistributedCache"/> behaviour (tenants,
/// batches, tags, sliding expiration, fail-safe reads) on the shared <see cref="IConnectionMultiplexer"/>.
/// </summary>
/// <remarks>
/// <para>
/// Every operation is one Lua script, so one round trip and atomic. Expiry is decided by the injected
/// <see cref="TimeProvider"/> (in milliseconds), exactly as on PostgreSQL: a read passes the current time to the script,
/// and a sliding entry is extended in the same script, at most once per refresh step (see
/// <see cref="PgCacheOptions.SlidingRefreshGranularity"/>). Redis TTLs (remaining lifetime plus one minute) only free
/// abandoned keys; they never decide a hit.
/// </para>
/// <para>
/// Tags and tenants are kept in Redis sets beside the entries, so <see cref="RemoveByTagAsync"/> and
/// <see cref="RemoveTenantAsync"/> touch only their own entries. The scripts name keys they compute, so this mode needs a
/// single Redis primary (or a proxy that routes by the first key), not Redis Cluster; and an eviction policy that may
/// evict keys without a TTL (<c>allkeys-*</c>) can evict a tag set before its entries.
/// </para>
/// <para>
/// Failure policy: Redis errors and timeouts throw <see cref="PgCacheException"/> naming the operation and the reason,
/// unless <see cref="PgCacheOptions.FailSafe"/> turns transient errors on reads into misses. Asynchronous operations are
/// bounded by <see cref="PgCacheOptions.OperationTimeout"/> and by the multiplexer's <c>asyncTimeout</c>, synchronous
/// ones by its <c>syncTimeout</c>. The constructor does no I/O.
/// </para>
/// </remarks>
public sealed partial class RedisDistributedCache : IPgDistributedCache, IDisposable
{
    // Added to every backstop TTL, so app servers whose clocks differ a little never lose a live entry to Redis.
    private const long BackstopMarginMilliseconds = 60_000;

    // The arguments of the set script before the values: the three key prefixes, then now, e, s, a, margin and tags.
    private const int WriteHeaderLength = 9;

    private readonly Shared _shared;
    private readonly string? _tenantId;
    private readonly RedisCacheKeys? _tenantKeys;

    /// <summary>
    /// Initializes a new instance of the <see cref="RedisDistributedCache"/> class. Usually resolved from DI after
    /// <c>services.AddPgFirst(o => o.CacheBackend = PgFirstBackend.Redis).AddRedis(...)</c> and <c>services.AddPgCache()</c>.
    /// </summary>
    /// <param name="connection">The shared Redis connection; not disposed by the cache.</param>
    /// <param name="redisOptions">The Redis options (key prefix).</param>
    /// <param name="options">The cache options.</param>
    /// <param name="tenantContext">The ambient tenant.</param>
    /// <param name="timeProvider">The single clock of every expiry.</param>
    /// <param name="meterFactory">The meter factory, or <see langword="null"/>.</param>
    /// <param name="logger">The logger, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">The key prefix is empty.</exception>
    public RedisDistributedCache(
        IConnectionMultiplexer connection,
        PgFirstRedisOptions redisOptions,
        PgCacheOptions options,
        ITenantContext tenantContext,
        TimeProvider timeProvider,
        IMeterFactory? meterFactory = null,
        ILogger<RedisDistributedCache>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(redisOptions);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tenantContext);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentException.ThrowIfNullOrEmpty(redisOptions.KeyPrefix, nameof(redisOptions));
        _shared = new Shared(connection, redisOptions.KeyPrefix, options, tenantContext, timeProvider, meterFactory, logger);
    }

    private RedisDistributedCache(Shared shared, string tenantId)
    {
        _shared = shared;
        _tenantId = tenantId;
        _tenantKeys = new RedisCacheKeys(shared.KeyPrefix, tenantId);
    }

    /// <inheritdoc />
    public string TenantId => _tenantId ?? _shared.AmbientTenant();

    /// <inheritdoc />
    public IPgDistributedCache ForTenant(string tenantId)
    {
        PgTenantId.Validate(tenantId, nameof(tenantId));
        return new RedisDistributedCache(_shared, tenantId);
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

        var names = Keys();
        var found = await ExecuteAsync(
            "get_many",
            true,
            RedisCacheScripts.Read,
            [.. unique.Select(names.Entry)],
            ReadArguments(names),
            result =>
            {
                var values = (RedisResult[])result!;
                var hits = new Dictionary<string, byte[]>(unique.Length, StringComparer.Ordinal);
                long bytes = 0;
                for (var i = 0; i < unique.Length; i++)
                {
                    if (!values[i].IsNull)
                    {
                        var value = (byte[])values[i]!;
                        bytes += value.Length;
                        hits[unique[i]] = value;
                    }
                }

                _shared.Metrics.Read(bytes);
                return (IReadOnlyDictionary<string, byte[]>)hits;
            },
            async: true,
            cancellationToken).ConfigureAwait(false);
        return found ?? new Dictionary<string, byte[]>(StringComparer.Ordinal);
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

        var names = Keys();
        var arguments = WriteArguments(names, now, expiry, tags, values.Length);
        for (var i = 0; i < values.Length; i++)
        {
            arguments[WriteHeaderLength + i] = values[i];
        }

        await ExecuteAsync("set_many", false, RedisCacheScripts.Set, [.. keys.Select(names.Entry)], arguments, Ok, async: true, cancellationToken)
            .ConfigureAwait(false);
        _shared.Metrics.Written(values.Sum(v => (long)v.Length));
    }

    /// <inheritdoc />
    public async Task<long> RemoveManyAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        var unique = CacheArguments.ValidateKeys(keys);
        return unique.Length == 0
            ? 0
            : await RemoveCoreAsync("remove_many", unique, async: true, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<long> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default)
    {
        CacheArguments.ValidateTag(tag);
        var names = Keys();
        var arguments = names.Arguments(1);
        arguments[3] = tag;
        return await ExecuteAsync("remove_by_tag", false, RedisCacheScripts.RemoveByTag, [names.Tag(tag)], arguments, Count, async: true, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<long> RemoveTenantAsync(CancellationToken cancellationToken = default)
    {
        var names = Keys();
        return await ExecuteAsync("remove_tenant", false, RedisCacheScripts.RemoveTenant, [names.Index], names.Arguments(0), Count, async: true, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>Releases the cache's own meter when it was created without a meter factory.</summary>
    public void Dispose()
    {
        if (_tenantId is null)
        {
            _shared.Metrics.Dispose();
        }
    }

    private static long Ok(RedisResult result) => 0;

    private static long Count(RedisResult result) => (long)result;

    private static long UnixMilliseconds(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    // Callers that read TenantId per operation see the ambient tenant of that operation.
    private RedisCacheKeys Keys() => _tenantKeys ?? new RedisCacheKeys(_shared.KeyPrefix, TenantId);

    private RedisValue[] ReadArguments(RedisCacheKeys names)
    {
        var arguments = names.Arguments(3);
        arguments[3] = UnixMilliseconds(_shared.Time.GetUtcNow());
        arguments[4] = (long)_shared.Options.SlidingRefreshGranularity.TotalMilliseconds;
        arguments[5] = BackstopMarginMilliseconds;
        return arguments;
    }

    private static RedisValue[] WriteArguments(RedisCacheKeys names, DateTimeOffset now, CacheExpiry expiry, string[]? tags, int valueCount)
    {
        var arguments = names.Arguments(WriteHeaderLength - 3 + valueCount);
        arguments[3] = UnixMilliseconds(now);
        arguments[4] = expiry.ExpiresAt is { } expiresAt ? UnixMilliseconds(expiresAt) : -1;
        arguments[5] = expiry.Sliding is { } sliding ? Math.Max(1, (long)sliding.TotalMilliseconds) : -1;
        arguments[6] = expiry.Absolute is { } absolute ? UnixMilliseconds(absolute) : -1;
        arguments[7] = BackstopMarginMilliseconds;

        // Tags cannot hold U+0000 (CacheArguments), so it delimits them; the script looks a tag up as "\0tag\0".
        arguments[8] = tags is null ? string.Empty : "\0" + string.Join('\0', tags) + "\0";
        return arguments;
    }

    private async ValueTask<byte[]?> GetCoreAsync(string key, bool async, CancellationToken cancellationToken)
    {
        var names = Keys();
        var value = await ExecuteAsync(
            "get",
            true,
            RedisCacheScripts.Read,
            [names.Entry(key)],
            ReadArguments(names),
            static result => ((RedisResult[])result!)[0] is { IsNull: false } hit ? (byte[])hit! : null,
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
        var names = Keys();
        var length = await ExecuteAsync(
            "get",
            true,
            RedisCacheScripts.Read,
            [names.Entry(key)],
            ReadArguments(names),
            result =>
            {
                var hit = ((RedisResult[])result!)[0];
                if (hit.IsNull)
                {
                    return (int?)null;
                }

                ReadOnlyMemory<byte> value = (RedisValue)hit;
                destination.Write(value.Span);
                return value.Length;
            },
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

        // A multi-segment value is copied into an array of its own (not a pooled one): a write that timed out here may
        // still be queued in the multiplexer, and must never read a buffer that went back to a pool.
        var memory = value.IsSingleSegment ? value.First : value.ToArray();
        var names = Keys();
        var arguments = WriteArguments(names, now, expiry, tags, 1);
        arguments[WriteHeaderLength] = memory;
        await ExecuteAsync("set", false, RedisCacheScripts.Set, [names.Entry(key)], arguments, Ok, async, cancellationToken).ConfigureAwait(false);
        _shared.Metrics.Written(memory.Length);
    }

    private ValueTask<long> RefreshCoreAsync(string key, bool async, CancellationToken cancellationToken)
    {
        var names = Keys();
        var arguments = names.Arguments(2);
        arguments[3] = UnixMilliseconds(_shared.Time.GetUtcNow());
        arguments[4] = BackstopMarginMilliseconds;
        return ExecuteAsync("refresh", false, RedisCacheScripts.Refresh, [names.Entry(key)], arguments, Ok, async, cancellationToken);
    }

    private ValueTask<long> RemoveCoreAsync(string operation, string[] keys, bool async, CancellationToken cancellationToken)
    {
        var names = Keys();
        return ExecuteAsync(operation, false, RedisCacheScripts.Remove, [.. keys.Select(names.Entry)], names.Arguments(0), Count, async, cancellationToken);
    }

    // Runs one script with the metrics, error translation and fail-safe policy in one place. Synchronous callers pass
    // async: false and get an already completed task.
    private async ValueTask<TResult?> ExecuteAsync<TResult>(
        string operation,
        bool isRead,
        RedisScript script,
        RedisKey[] keys,
        RedisValue[] arguments,
        Func<RedisResult, TResult> read,
        bool async,
        CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = PgCacheMetrics.Start();
        try
        {
            var raw = async
                ? await EvaluateAsync(script, keys, arguments, cancellationToken).ConfigureAwait(false)
                : Evaluate(script, keys, arguments);
            var result = read(raw);
            _shared.Metrics.Record(operation, ResultName(isRead, result), started);
            return result;
        }
        catch (Exception ex) when ((ex is RedisException or TimeoutException) && !cancellationToken.IsCancellationRequested)
        {
            if (isRead && _shared.Options.FailSafe && IsTransient(ex))
            {
                _shared.Metrics.Record(operation, "failsafe_miss", started);
                LogFailSafeMiss(_shared.Logger, ex, operation, ex.Message);
                return default;
            }

            _shared.Metrics.Record(operation, "error", started);
            var error = new PgCacheException($"PgCache {operation} failed: {ex.Message}", ex) { Operation = operation };
            LogOperationFailed(_shared.Logger, ex, operation, ex.Message);
            throw error;
        }
    }

    private RedisResult Evaluate(RedisScript script, RedisKey[] keys, RedisValue[] arguments) =>
        script.Evaluate(_shared.Connection.GetDatabase(), keys, arguments);

    private Task<RedisResult> EvaluateAsync(RedisScript script, RedisKey[] keys, RedisValue[] arguments, CancellationToken cancellationToken) =>
        script.EvaluateAsync(_shared.Connection.GetDatabase(), keys, arguments, _shared.Options.OperationTimeout, cancellationToken);

    // Unreachable, timed out, or a server that is loading, busy with a script, or failing over.
    private static bool IsTransient(Exception ex) => ex switch
    {
        RedisConnectionException or TimeoutException => true,
        RedisServerException server => server.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || server.Message.StartsWith("BUSY", StringComparison.Ordinal)
            || server.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal)
            || server.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
            || server.Message.StartsWith("READONLY", StringComparison.Ordinal),
        _ => false,
    };

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
        IConnectionMultiplexer connection,
        string keyPrefix,
        PgCacheOptions options,
        ITenantContext tenantContext,
        TimeProvider timeProvider,
        IMeterFactory? meterFactory,
        ILogger? logger)
    {
        public IConnectionMultiplexer Connection { get; } = connection;

        public string KeyPrefix { get; } = keyPrefix;

        public PgCacheOptions Options { get; } = options;

        public TimeProvider Time { get; } = timeProvider;

        public PgCacheMetrics Metrics { get; } = new(meterFactory, "redis");

        public ILogger Logger { get; } = logger ?? NullLogger.Instance;

        public string AmbientTenant()
        {
            var tenant = tenantContext.TenantId;
            return PgTenantId.IsValid(tenant)
                ? tenant
                : throw new InvalidOperationException($"The registered {nameof(ITenantContext)} returned an invalid tenant id: {PgTenantId.Rule}");
        }
    }
}

using System.Buffers;
using PgCache;
using PgFirst.Redis.Internal;
using StackExchange.Redis;

namespace PgFirst.Redis;

// One code path serves the synchronous and asynchronous members: with async: false it makes synchronous
// StackExchange.Redis calls only, and its ValueTask is already complete.
#pragma warning disable VSTHRD002, VSTHRD103, CA2012

/// <summary>
/// The Redis store of the cache (<see cref="IPgCacheBackend"/> under <see cref="PgDistributedCache"/>): the same
/// behaviour as PostgreSQL (tenants, batches, tags, sliding expiration) on the shared <see cref="IConnectionMultiplexer"/>.
/// </summary>
/// <remarks>
/// <para>
/// The hot paths are plain commands, as Microsoft's <c>RedisCache</c> runs them: a single-entry read is one <c>HMGET</c>,
/// and a write of one entry without tags and without a near-cache invalidation is one <c>HSET</c> and one
/// <c>PEXPIRE</c> (or <c>PERSIST</c>), pipelined. Lua scripts, one round trip and atomic each, serve what needs
/// atomicity: a tagged write (the entry and its tag sets together), a write that publishes a near-cache invalidation
/// (published if and only if the write happened), the read of a sliding entry whose refresh is due (reread and
/// extended in one step), multi-key reads and writes, and removals by key and by tag. Removing a tenant scans for the
/// prefix of its entries (<c>SCAN</c>, so it visits the whole keyspace once) rather than keeping an index that every
/// write would pay for.
/// Expiry is decided by the cache's clock (in milliseconds), exactly as on PostgreSQL: a read compares the entry's
/// expiry with the current time, and a sliding entry is extended at most once per refresh step. Redis TTLs (remaining
/// lifetime plus one minute) only free abandoned keys; they never decide a hit.
/// </para>
/// <para>
/// Tags and tenants are kept in Redis sets beside the entries, so removal by tag and by tenant touch only their own
/// entries. The scripts name keys they compute, so this mode needs a single Redis primary (or a proxy that routes by
/// the first key), not Redis Cluster; and an eviction policy that may evict keys without a TTL (<c>allkeys-*</c>) can
/// evict a tag set before its entries.
/// </para>
/// </remarks>
public sealed class RedisCacheBackend : IPgCacheBackend
{
    // Added to every backstop TTL, so app servers whose clocks differ a little never lose a live entry to Redis.
    private const long BackstopMarginMilliseconds = 60_000;

    // The arguments of the set script before the values: the three key prefixes, then now, e, s, a, margin and tags.
    private const int WriteHeaderLength = 9;

    // The fields a plain read needs: the value, e (effective expiry), s (sliding window) and a (absolute expiry); the
    // near cache's read also t (the tags).
    private static readonly RedisValue[] PlainReadFields = ["value", "e", "s", "a"];
    private static readonly RedisValue[] PlainEntryFields = ["value", "e", "s", "a", "t"];

    // How late StackExchange.Redis may notice its own async timeout: it checks on its once-a-second heartbeat.
    private static readonly TimeSpan MultiplexerTimeoutSlack = TimeSpan.FromSeconds(1);

    // How many keys one SCAN step of a tenant's removal asks for.
    private const int ScanPageSize = 1000;

    private readonly IConnectionMultiplexer _connection;
    private readonly string _keyPrefix;
    private readonly TimeSpan _timeout;
    private readonly bool _multiplexerBoundsTimeout;
    private TenantKeys? _last;

    /// <summary>Initializes a new instance of the <see cref="RedisCacheBackend"/> class. Does no I/O.</summary>
    /// <param name="connection">The shared connection; not disposed.</param>
    /// <param name="redisOptions">The Redis options (key prefix).</param>
    /// <param name="options">The cache options (operation timeout).</param>
    public RedisCacheBackend(IConnectionMultiplexer connection, PgFirstRedisOptions redisOptions, PgCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(redisOptions);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(redisOptions.KeyPrefix, nameof(redisOptions));
        _connection = connection;
        _keyPrefix = redisOptions.KeyPrefix;
        _timeout = options.OperationTimeout;
        // StackExchange.Redis checks its async timeout on its heartbeat (every second), so it may fire up to a second
        // late: only an async timeout a second shorter than ours bounds an operation within OperationTimeout.
        _multiplexerBoundsTimeout = TimeSpan.FromMilliseconds(ConfigurationOptions.Parse(connection.Configuration).AsyncTimeout) + MultiplexerTimeoutSlack <= _timeout;
    }

    /// <inheritdoc />
    public string Name => "redis";

    /// <inheritdoc />
    public async ValueTask<byte[]?> GetAsync(PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        var entry = Keys(read.TenantId).Entry(key);
        var fields = async ? await Bounded(_connection.GetDatabase().HashGetAsync(entry, PlainReadFields), cancellationToken).ConfigureAwait(false) : _connection.GetDatabase().HashGet(entry, PlainReadFields);
        var value = Live(fields, read) switch
        {
            Liveness.Missing => RedisValue.Null,
            Liveness.Live => fields[0],
            _ => await RefreshingReadAsync(read, entry, async, cancellationToken).ConfigureAwait(false),
        };
        return value.IsNull ? null : (byte[])value!;
    }

    /// <inheritdoc />
    public async ValueTask<PgCacheEntry?> GetEntryAsync(PgCacheRead read, string key, bool async, CancellationToken cancellationToken)
    {
        var names = Keys(read.TenantId);
        RedisKey entry = names.Entry(key);
        var database = _connection.GetDatabase();
        var fields = async
            ? await Bounded(database.HashGetAsync(entry, PlainEntryFields), cancellationToken).ConfigureAwait(false)
            : database.HashGet(entry, PlainEntryFields);
        switch (Live(fields, read))
        {
            case Liveness.Missing:
                return null;
            case Liveness.Live:
                return Entry(fields[0], (long)fields[1], (long)fields[2], (long)fields[3], (string?)fields[4]);
        }

        return await RunAsync(
            RedisCacheScripts.ReadEntry,
            [entry],
            ReadArguments(names, read),
            static result =>
            {
                if (result.IsNull || result.Resp2Type != ResultType.Array)
                {
                    return (PgCacheEntry?)null;
                }

                var fields = (RedisResult[])result!;
                return Entry(
                    (RedisValue)fields[0],
                    long.Parse((string)fields[1]!, System.Globalization.CultureInfo.InvariantCulture),
                    long.Parse((string)fields[2]!, System.Globalization.CultureInfo.InvariantCulture),
                    long.Parse((string)fields[3]!, System.Globalization.CultureInfo.InvariantCulture),
                    (string?)fields[4]);
            },
            async,
            cancellationToken).ConfigureAwait(false);
    }

    private static PgCacheEntry Entry(RedisValue value, long expires, long sliding, long absolute, string? tags) => new(
        (byte[])value!,
        new PgCacheExpiry(
            expires == -1 ? null : DateTimeOffset.FromUnixTimeMilliseconds(expires),
            sliding == -1 ? null : TimeSpan.FromMilliseconds(sliding),
            absolute == -1 ? null : DateTimeOffset.FromUnixTimeMilliseconds(absolute)),
        string.IsNullOrEmpty(tags) ? null : tags.Split('\0', StringSplitOptions.RemoveEmptyEntries));

    /// <inheritdoc />
    public IPgCacheInvalidationBus CreateInvalidationBus(IPgCacheInvalidationSink sink) =>
        new RedisCacheInvalidationBus(_connection, _keyPrefix + "pgcache:near", _timeout, sink);

    /// <inheritdoc />
    public async ValueTask<int?> GetIntoAsync(PgCacheRead read, string key, IBufferWriter<byte> destination, bool async, CancellationToken cancellationToken)
    {
        var entry = Keys(read.TenantId).Entry(key);
        var fields = async ? await Bounded(_connection.GetDatabase().HashGetAsync(entry, PlainReadFields), cancellationToken).ConfigureAwait(false) : _connection.GetDatabase().HashGet(entry, PlainReadFields);
        var hit = Live(fields, read) switch
        {
            Liveness.Missing => RedisValue.Null,
            Liveness.Live => fields[0],
            _ => await RefreshingReadAsync(read, entry, async, cancellationToken).ConfigureAwait(false),
        };
        if (hit.IsNull)
        {
            return null;
        }

        ReadOnlyMemory<byte> value = hit;
        destination.Write(value.Span);
        return value.Length;
    }

    // A single-entry read is one plain HMGET (no script): a missing or expired entry is a miss, an entry without sliding
    // expiration (or a sliding one whose refresh is not due yet) a hit, decided by Live. Only a sliding entry whose
    // refresh is due runs the read script (below), which reads the entry again and extends it atomically, and whose
    // answer is the one returned: at most once per refresh step per entry, so a read costs what Microsoft's RedisCache's
    // HMGET costs.
    private ValueTask<RedisValue> RefreshingReadAsync(PgCacheRead read, RedisKey entry, bool async, CancellationToken cancellationToken) => RunAsync(
        RedisCacheScripts.Read,
        [entry],
        ReadArguments(Keys(read.TenantId), read),
        static result => (RedisValue)((RedisResult[])result!)[0],
        async,
        cancellationToken);

    // An operation bounded by OperationTimeout and the caller's token. When the multiplexer's own async timeout (plus
    // its heartbeat's second) is no longer than OperationTimeout and the token cannot be cancelled, the multiplexer already bounds it (its
    // RedisTimeoutException is a TimeoutException, classified the same), and no timer is armed per operation.
    private Task<T> Bounded<T>(Task<T> task, CancellationToken cancellationToken) =>
        _multiplexerBoundsTimeout && !cancellationToken.CanBeCanceled ? task : task.WaitAsync(_timeout, cancellationToken);

    private Task Bounded(Task task, CancellationToken cancellationToken) =>
        _multiplexerBoundsTimeout && !cancellationToken.CanBeCanceled ? task : task.WaitAsync(_timeout, cancellationToken);

    private enum Liveness
    {
        Missing,
        Live,
        RefreshDue,
    }

    // The fields {value, e, s, a, …} of a plain read, judged by the same rule as the script's read_live: missing or
    // expired, live, or a sliding entry whose extension would move its expiry by at least min(granularity, window / 10)
    // (never beyond its absolute expiry), which only the script may do.
    private static Liveness Live(RedisValue[] fields, PgCacheRead read)
    {
        if (fields[0].IsNull)
        {
            return Liveness.Missing;
        }

        var now = read.Now.ToUnixTimeMilliseconds();
        var expires = (long)fields[1];
        if (expires != -1 && expires <= now)
        {
            return Liveness.Missing;
        }

        var sliding = (long)fields[2];
        if (sliding == -1)
        {
            return Liveness.Live;
        }

        var absolute = (long)fields[3];
        var extended = absolute != -1 && absolute < now + sliding ? absolute : now + sliding;
        return extended - expires < Math.Min((long)read.RefreshGranularity.TotalMilliseconds, sliding / 10.0) ? Liveness.Live : Liveness.RefreshDue;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyDictionary<string, byte[]>> GetManyAsync(PgCacheRead read, string[] keys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var names = Keys(read.TenantId);
        return RunAsync(
            RedisCacheScripts.Read,
            [.. keys.Select(names.Entry)],
            ReadArguments(names, read),
            result =>
            {
                var values = (RedisResult[])result!;
                var hits = new Dictionary<string, byte[]>(keys.Length, StringComparer.Ordinal);
                for (var i = 0; i < keys.Length; i++)
                {
                    if (!values[i].IsNull)
                    {
                        hits[keys[i]] = (byte[])values[i]!;
                    }
                }

                return (IReadOnlyDictionary<string, byte[]>)hits;
            },
            async: true,
            cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask SetAsync(PgCacheWrite write, string key, ReadOnlySequence<byte> value, bool async, CancellationToken cancellationToken)
    {
        var names = Keys(write.TenantId);

        // A multi-segment value is copied into an array of its own (not a pooled one): a write that timed out may still
        // be queued in the multiplexer, and must never read a buffer that went back to a pool.
        RedisValue stored = value.IsSingleSegment ? value.First : value.ToArray();
        if (write.Tags is null && write.Invalidation is null)
        {
            await PlainSetAsync(names.Entry(key), stored, write, async, cancellationToken).ConfigureAwait(false);
            return;
        }

        var arguments = WriteArguments(names, write, 1);
        arguments[WriteHeaderLength] = stored;
        await RunAsync(RedisCacheScripts.Set, [names.Entry(key)], Notifying(arguments, write.Invalidation), static _ => 0, async, cancellationToken).ConfigureAwait(false);
    }

    // An untagged write without a near-cache invalidation: every field of the hash (t empty) and its backstop TTL, two
    // plain commands pipelined, as RedisCache writes. Not atomic: a concurrent write of the same key may leave one
    // write's fields with the other's backstop TTL, so Redis may free the entry early or keep it past its expiry; a
    // read still decides by the e field, so it is never served past its expiry. Nothing else needs to change together with it: no tag set gains
    // a member, and the tag sets of the value it replaces may keep a member that no longer carries their tag, which a
    // removal by tag checks for (the entry's t field) and the next write of that tag prunes.
    private async ValueTask PlainSetAsync(RedisKey entry, RedisValue value, PgCacheWrite write, bool async, CancellationToken cancellationToken)
    {
        var expiry = write.Expiry;
        var now = write.Now.ToUnixTimeMilliseconds();
        var expires = expiry.ExpiresAt is { } expiresAt ? expiresAt.ToUnixTimeMilliseconds() : -1;
        HashEntry[] fields =
        [
            new("value", value),
            new("e", expires),
            new("s", expiry.Sliding is { } sliding ? Math.Max(1, (long)sliding.TotalMilliseconds) : -1),
            new("a", expiry.Absolute is { } absolute ? absolute.ToUnixTimeMilliseconds() : -1),
            new("t", RedisValue.EmptyString),
        ];
        TimeSpan? ttl = expires == -1 ? null : TimeSpan.FromMilliseconds(expires - now + BackstopMarginMilliseconds);
        var database = _connection.GetDatabase();
        if (!async)
        {
            database.HashSet(entry, fields);
            if (ttl is { } lifetime)
            {
                database.KeyExpire(entry, lifetime);
            }
            else
            {
                database.KeyPersist(entry);
            }

            return;
        }

        var set = database.HashSetAsync(entry, fields);
        var expire = ttl is { } due ? database.KeyExpireAsync(entry, due) : database.KeyPersistAsync(entry);
        await Bounded(Task.WhenAll(set, expire), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask SetManyAsync(PgCacheWrite write, string[] keys, byte[][] values, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        var names = Keys(write.TenantId);
        var arguments = WriteArguments(names, write, values.Length);
        for (var i = 0; i < values.Length; i++)
        {
            arguments[WriteHeaderLength + i] = values[i];
        }

        await RunAsync(RedisCacheScripts.Set, [.. keys.Select(names.Entry)], Notifying(arguments, write.Invalidation), static _ => 0, async: true, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask RefreshAsync(string tenantId, string key, DateTimeOffset now, bool async, CancellationToken cancellationToken)
    {
        var names = Keys(tenantId);
        var arguments = names.Arguments(2);
        arguments[3] = now.ToUnixTimeMilliseconds();
        arguments[4] = BackstopMarginMilliseconds;
        await RunAsync(RedisCacheScripts.Refresh, [names.Entry(key)], arguments, static _ => 0, async, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<long> RemoveAsync(string tenantId, string[] keys, string? invalidation, bool async, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var names = Keys(tenantId);
        return RunAsync(RedisCacheScripts.Remove, [.. keys.Select(names.Entry)], Notifying(names.Arguments(0), invalidation), static result => (long)result, async, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<long> RemoveByTagAsync(string tenantId, string tag, string? invalidation, CancellationToken cancellationToken)
    {
        var names = Keys(tenantId);
        var arguments = names.Arguments(1);
        arguments[3] = tag;
        return RunAsync(RedisCacheScripts.RemoveByTag, [names.Tag(tag)], Notifying(arguments, invalidation), static result => (long)result, async: true, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask<long> RemoveTenantAsync(string tenantId, string? invalidation, CancellationToken cancellationToken)
    {
        // Every entry and tag set of the tenant, found by its prefix: SCAN returns every key that exists from the
        // start of the scan to its end, so every entry written before this call is removed; one written while it runs
        // may stay, as if written after it. The near-cache invalidation goes out once the last entry is gone.
        // A removal that failed part-way has still removed some entries: the invalidation goes out either way.
        var names = Keys(tenantId);
        var database = _connection.GetDatabase();
        try
        {
            var removed = await DeleteMatchingAsync(database, names.EntryPrefix, count: true, cancellationToken).ConfigureAwait(false);
            await DeleteMatchingAsync(database, names.TagPrefix, count: false, cancellationToken).ConfigureAwait(false);
            await database.KeyDeleteAsync(names.Index).WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
            return removed;
        }
        finally
        {
            if (invalidation is not null)
            {
                await database.PublishAsync(RedisChannel.Literal(_keyPrefix + "pgcache:near"), invalidation).WaitAsync(_timeout, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    private async Task<long> DeleteMatchingAsync(IDatabase database, string prefix, bool count, CancellationToken cancellationToken)
    {
        var pattern = GlobEscaped(prefix) + "*";
        long removed = 0;
        long cursor = 0;
        do
        {
            var page = (RedisResult[])(await database.ExecuteAsync("SCAN", cursor, "MATCH", pattern, "COUNT", ScanPageSize).WaitAsync(_timeout, cancellationToken).ConfigureAwait(false))!;
            cursor = (long)page[0];
            var keys = (RedisKey[])page[1]!;
            if (keys.Length > 0)
            {
                var deleted = await database.KeyDeleteAsync(keys).WaitAsync(_timeout, cancellationToken).ConfigureAwait(false);
                removed += count ? deleted : 0;
            }
        }
        while (cursor != 0);
        return removed;
    }

    // A literal prefix for SCAN's MATCH: its glob characters (* ? [ ] \) escaped. Tenant ids and key prefixes may hold them.
    private static string GlobEscaped(string text)
    {
        var escaped = new System.Text.StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            if (c is '*' or '?' or '[' or ']' or '\\')
            {
                escaped.Append('\\');
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }

    /// <inheritdoc />
    public PgCacheFailure? Classify(Exception exception) => exception is RedisException or TimeoutException
        ? new PgCacheFailure(IsTransient(exception), exception.Message)
        : null;

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

    // The key names of the tenant most recently used: a cache view bound to one tenant computes them once.
    private RedisCacheKeys Keys(string tenantId)
    {
        var last = Volatile.Read(ref _last);
        if (last is not null && string.Equals(last.TenantId, tenantId, StringComparison.Ordinal))
        {
            return last.Keys;
        }

        var keys = new RedisCacheKeys(_keyPrefix, tenantId);
        Volatile.Write(ref _last, new TenantKeys(tenantId, keys));
        return keys;
    }

    private static RedisValue[] ReadArguments(RedisCacheKeys names, PgCacheRead read)
    {
        var arguments = names.Arguments(3);
        arguments[3] = read.Now.ToUnixTimeMilliseconds();
        arguments[4] = (long)read.RefreshGranularity.TotalMilliseconds;
        arguments[5] = BackstopMarginMilliseconds;
        return arguments;
    }

    private static RedisValue[] WriteArguments(RedisCacheKeys names, PgCacheWrite write, int valueCount)
    {
        var expiry = write.Expiry;
        var arguments = names.Arguments(WriteHeaderLength - 3 + valueCount);
        arguments[3] = write.Now.ToUnixTimeMilliseconds();
        arguments[4] = expiry.ExpiresAt is { } expiresAt ? expiresAt.ToUnixTimeMilliseconds() : -1;
        arguments[5] = expiry.Sliding is { } sliding ? Math.Max(1, (long)sliding.TotalMilliseconds) : -1;
        arguments[6] = expiry.Absolute is { } absolute ? absolute.ToUnixTimeMilliseconds() : -1;
        arguments[7] = BackstopMarginMilliseconds;

        // Tags cannot hold U+0000 (the cache validates them), so it delimits them; the script looks a tag up as "\0tag\0".
        arguments[8] = write.Tags is null ? string.Empty : "\0" + string.Join('\0', write.Tags) + "\0";
        return arguments;
    }

    // The near-cache invalidation goes after the script's own arguments, [channel, message]; the script publishes it.
    private RedisValue[] Notifying(RedisValue[] arguments, string? invalidation)
    {
        if (invalidation is null)
        {
            return arguments;
        }

        var extended = new RedisValue[arguments.Length + 2];
        arguments.CopyTo(extended, 0);
        extended[^2] = _keyPrefix + "pgcache:near";
        extended[^1] = invalidation;
        return extended;
    }

    private async ValueTask<TResult> RunAsync<TResult>(RedisScript script, RedisKey[] keys, RedisValue[] arguments, Func<RedisResult, TResult> read, bool async, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabase();
        var raw = async
            ? await script.EvaluateAsync(database, keys, arguments, _timeout, cancellationToken).ConfigureAwait(false)
            : script.Evaluate(database, keys, arguments);
        return read(raw);
    }

    private sealed record TenantKeys(string TenantId, RedisCacheKeys Keys);

    // Pub/sub on the shared multiplexer. StackExchange.Redis subscribes again by itself after a reconnection; the
    // near cache's heartbeat (a message it must receive back) proves when it has, so nothing is served from memory
    // in between.
    private sealed class RedisCacheInvalidationBus(IConnectionMultiplexer connection, string channel, TimeSpan timeout, IPgCacheInvalidationSink sink) : IPgCacheInvalidationBus
    {
        private readonly RedisChannel _channel = RedisChannel.Literal(channel);
        private readonly CancellationTokenSource _stopping = new();
        private ChannelMessageQueue? _queue;
        private Task? _subscribing;
        private readonly object _gate = new();
        private volatile bool _subscribed;
        private int _generation;

        public string Channel { get; } = channel;

        public void Start()
        {
            if (_subscribing is not null)
            {
                return;
            }

            connection.ConnectionFailed += OnConnectionFailed;
            connection.ConnectionRestored += OnConnectionRestored;
            _subscribing = Task.Run(() => SubscribeAsync(_stopping.Token));
        }

        public async ValueTask PublishAsync(string payload, CancellationToken cancellationToken) =>
            await connection.GetSubscriber().PublishAsync(_channel, payload).WaitAsync(timeout, cancellationToken).ConfigureAwait(false);

        public async ValueTask DisposeAsync()
        {
            connection.ConnectionFailed -= OnConnectionFailed;
            connection.ConnectionRestored -= OnConnectionRestored;
            await _stopping.CancelAsync().ConfigureAwait(false);
            if (_subscribing is not null)
            {
                try
                {
#pragma warning disable VSTHRD003 // Started by this instance, on the thread pool.
                    await _subscribing.ConfigureAwait(false);
#pragma warning restore VSTHRD003
                }
                catch (OperationCanceledException)
                {
                }
            }

            if (_queue is not null)
            {
                await _queue.UnsubscribeAsync().ConfigureAwait(false);
            }

            _stopping.Dispose();
        }

        private async Task SubscribeAsync(CancellationToken stopping)
        {
            var delay = TimeSpan.FromMilliseconds(250);
            while (!stopping.IsCancellationRequested)
            {
                try
                {
                    var queue = await connection.GetSubscriber().SubscribeAsync(_channel).WaitAsync(timeout, stopping).ConfigureAwait(false);
                    queue.OnMessage(message =>
                    {
                        if (!message.Message.IsNull)
                        {
                            sink.OnMessage((string)message.Message!);
                        }
                    });
                    _queue = queue;
                    _subscribed = true;
                    sink.OnSubscribed();
                    return;
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    sink.OnLost(ex);
                    await Task.Delay(delay, stopping).ConfigureAwait(false);
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
                }
            }
        }

        // Any lost connection may have dropped messages (with RESP3 the subscription shares the interactive one). The
        // events can arrive in either order and on any thread, so each one starts over: lost now, subscribed again
        // once the subscription's connection is back (the heartbeat then proves it receives).
        private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e) => Resync(e.Exception);

        private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e) => Resync(e.Exception);

        private void Resync(Exception? exception)
        {
            if (!_subscribed || _stopping.IsCancellationRequested)
            {
                return;
            }

            int generation;
            lock (_gate)
            {
                generation = ++_generation;
                sink.OnLost(exception);
            }

            _ = Task.Run(async () =>
            {
                var subscriber = connection.GetSubscriber();
                try
                {
                    while (!subscriber.IsConnected(_channel))
                    {
                        await Task.Delay(50, _stopping.Token).ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (ObjectDisposedException)
                {
                    return;
                }

                lock (_gate)
                {
                    if (generation == _generation && !_stopping.IsCancellationRequested)
                    {
                        sink.OnSubscribed();
                    }
                }
            });
        }
    }
}

using System.Buffers;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using PgCache;
using PgFirst.Testing;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

// Redis-only behaviour: the key layout, what the scripts write, the backstop TTLs and the wiring.
public class RedisCacheBackendTests(RedisServer server) : IAsyncLifetime
{
    private readonly string _prefix = RedisServer.NewKeyPrefix();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));

    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    private IDatabase Db => server.Connection.GetDatabase();

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync() => await server.DeleteKeysAsync(_prefix);

    private PgDistributedCache Create(PgCacheOptions? options = null, IMeterFactory? meters = null, IConnectionMultiplexer? connection = null, ILogger<PgDistributedCache>? logger = null) =>
        new(
            new RedisCacheBackend(connection ?? server.Connection, new PgFirstRedisOptions { KeyPrefix = _prefix }, options ?? new PgCacheOptions()),
            options ?? new PgCacheOptions(),
            new PgTenantContext("default"),
            _time,
            meters,
            logger);

    private string Entry(string key, string tenant = "default") => $"{_prefix}c:{tenant.Length}:{tenant}:{key}";

    private static long Ms(TimeSpan span) => (long)span.TotalMilliseconds;

    private static long UnixMs(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    private async Task<ConnectionMultiplexer> ConnectThroughAsync(TcpProxy proxy) =>
        await ConnectionMultiplexer.ConnectAsync(server.ThroughProxy(proxy));

    [Fact]
    public async Task Keys_TenantLengthPrefixed_HashWithExpiryFields()
    {
        var cache = Create();
        await cache.ForTenant("a").SetAsync("b:k", [1], new PgCacheEntryOptions { Tags = ["t"], SlidingExpiration = TimeSpan.FromMinutes(5) }, CancellationToken);
        await cache.ForTenant("a:b").SetAsync("k", [2], new DistributedCacheEntryOptions(), CancellationToken);

        var first = (await Db.HashGetAllAsync(Entry("b:k", "a"))).ToDictionary(e => (string)e.Name!, e => e.Value);
        Assert.Equal([1], (byte[])first["value"]!);
        Assert.Equal(UnixMs(_time.GetUtcNow().AddMinutes(5)), (long)first["e"]);
        Assert.Equal(Ms(TimeSpan.FromMinutes(5)), (long)first["s"]);
        Assert.Equal(-1, (long)first["a"]);
        Assert.Equal([2], (byte[])(await Db.HashGetAsync(Entry("k", "a:b"), "value"))!);
        Assert.Equal(-1, (long)await Db.HashGetAsync(Entry("k", "a:b"), "e"));
        Assert.True(await Db.SetContainsAsync($"{_prefix}t:1:a:t", "b:k"));

        // No tenant index: no write pays for one, and a tenant's removal finds its entries by their prefix.
        Assert.False(await Db.KeyExistsAsync($"{_prefix}n:1:a"));
        Assert.False(await Db.KeyExistsAsync($"{_prefix}n:3:a:b"));
    }

    [Fact]
    public async Task PlainWrite_UntaggedEntry_WritesEveryFieldAndTheBackstopTtl_AndDropsAnOldTtlWhenItHasNoExpiry()
    {
        var cache = Create();
        await cache.SetAsync("k", [1], new PgCacheEntryOptions { Tags = ["t"], SlidingExpiration = TimeSpan.FromMinutes(5) }, CancellationToken);

        // Rewritten without tags or sliding: the plain path replaces every field, t included.
        await cache.SetAsync("k", [2], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(10) }, CancellationToken);
        var fields = (await Db.HashGetAllAsync(Entry("k"))).ToDictionary(e => (string)e.Name!, e => e.Value);
        Assert.Equal([2], (byte[])fields["value"]!);
        Assert.Equal(UnixMs(_time.GetUtcNow().AddMinutes(10)), (long)fields["e"]);
        Assert.Equal(-1, (long)fields["s"]);
        Assert.Equal(UnixMs(_time.GetUtcNow().AddMinutes(10)), (long)fields["a"]);
        Assert.Equal("", (string)fields["t"]!);
        Assert.InRange((await Db.KeyTimeToLiveAsync(Entry("k")))!.Value, TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(11));

        // Its old tag set may still list it, but it no longer carries the tag: a removal by tag keeps it.
        Assert.Equal(0, await cache.RemoveByTagAsync("t", CancellationToken));
        Assert.Equal([2], await cache.GetAsync("k", CancellationToken));

        // Without expiry: the TTL the previous value had is gone, or Redis would drop a live entry.
        await cache.SetAsync("k", [3], new DistributedCacheEntryOptions(), CancellationToken);
        Assert.Null(await Db.KeyTimeToLiveAsync(Entry("k")));
        Assert.Equal([3], await cache.GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task RemoveTenant_KeyPrefixWithGlobCharacters_RemovesThatAppsTenantOnly()
    {
        // The removal scans for the tenant's prefix, the app's key prefix first. Tenant ids cannot hold glob characters,
        // key prefixes can. Unescaped, the pattern of prefix "p*:" matches the keys of the app on prefix "pq:", and
        // "p?:" too; a backslash must match itself.
        string[] prefixes = ["p*:", "pq:", "p?:", "p[q]:", "p\\q:"];
        var caches = prefixes.ToDictionary(p => p, p => new PgDistributedCache(
            new RedisCacheBackend(server.Connection, new PgFirstRedisOptions { KeyPrefix = _prefix + p }, new PgCacheOptions()),
            new PgCacheOptions(),
            new PgTenantContext("default"),
            _time));
        foreach (var cache in caches.Values)
        {
            await cache.SetAsync("k", [1], new DistributedCacheEntryOptions(), CancellationToken);
            await cache.SetAsync("tagged", [1], new PgCacheEntryOptions { Tags = ["t"] }, CancellationToken);
        }

        Assert.Equal(2, await caches["p*:"].RemoveTenantAsync(CancellationToken));
        Assert.Equal(2, await caches["p?:"].RemoveTenantAsync(CancellationToken));
        Assert.Equal(2, await caches["p[q]:"].RemoveTenantAsync(CancellationToken));
        foreach (var gone in new[] { "p*:", "p?:", "p[q]:" })
        {
            Assert.Null(await caches[gone].GetAsync("k", CancellationToken));
            Assert.False(await Db.KeyExistsAsync($"{_prefix}{gone}t:7:default:t"));
        }

        Assert.Equal([1], await caches["pq:"].GetAsync("k", CancellationToken));
        Assert.Equal([1], await caches["pq:"].GetAsync("tagged", CancellationToken));
        Assert.Equal(1, await caches["pq:"].RemoveByTagAsync("t", CancellationToken));
        Assert.Equal(2, await caches["p\\q:"].RemoveTenantAsync(CancellationToken));
        Assert.Equal([1], await caches["pq:"].GetAsync("k", CancellationToken));
    }

    [Fact]
    public async Task RemoveTenant_ManyEntries_RemovesAllAcrossScanPages_AndTheIndexOfEarlierReleases()
    {
        var cache = Create();
        var entries = Enumerable.Range(0, 2500).Select(i => new KeyValuePair<string, byte[]>($"k{i}", [1])).ToList();
        foreach (var chunk in entries.Chunk(500))
        {
            await cache.SetManyAsync(chunk, new DistributedCacheEntryOptions(), CancellationToken);
        }

        await cache.ForTenant("other").SetAsync("k0", [2], new DistributedCacheEntryOptions(), CancellationToken);
        await Db.SetAddAsync($"{_prefix}n:7:default", "k0"); // as an earlier release left it

        Assert.Equal(2500, await cache.RemoveTenantAsync(CancellationToken));
        Assert.Null(await cache.GetAsync("k2499", CancellationToken));
        Assert.False(await Db.KeyExistsAsync($"{_prefix}n:7:default"));
        Assert.Equal([2], await cache.ForTenant("other").GetAsync("k0", CancellationToken));
        Assert.Equal(0, await cache.RemoveTenantAsync(CancellationToken));
    }

    [Fact]
    public async Task GetAsync_EntryWithoutSlidingExpiration_IsNeverWrittenOnRead()
    {
        var cache = Create();
        await cache.SetAsync("k", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) }, CancellationToken);
        var expires = (long)await Db.HashGetAsync(Entry("k"), "e");
        var ttl = await Db.KeyTimeToLiveAsync(Entry("k"));

        for (var i = 0; i < 5; i++)
        {
            _time.Advance(TimeSpan.FromMinutes(5));
            Assert.NotNull(await cache.GetAsync("k", CancellationToken));
        }

        Assert.Equal(expires, (long)await Db.HashGetAsync(Entry("k"), "e"));
        Assert.True(await Db.KeyTimeToLiveAsync(Entry("k")) <= ttl);
    }

    [Fact]
    public async Task GetAsync_SlidingEntry_IsWrittenAtMostOncePerRefreshStep()
    {
        var cache = Create(new PgCacheOptions { SlidingRefreshGranularity = TimeSpan.FromMinutes(1) });
        await cache.SetAsync("k", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20) }, CancellationToken);
        var first = (long)await Db.HashGetAsync(Entry("k"), "e");

        for (var i = 0; i < 10; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(5));
            await cache.GetAsync("k", CancellationToken);
        }

        Assert.Equal(first, (long)await Db.HashGetAsync(Entry("k"), "e"));

        _time.Advance(TimeSpan.FromSeconds(15));
        await cache.GetManyAsync(["k"], CancellationToken);
        Assert.Equal(UnixMs(_time.GetUtcNow().AddMinutes(20)), (long)await Db.HashGetAsync(Entry("k"), "e"));
        var ttl = (await Db.KeyTimeToLiveAsync(Entry("k")))!.Value;
        Assert.InRange(ttl, TimeSpan.FromMinutes(20), TimeSpan.FromMinutes(21));
    }

    [Fact]
    public async Task Set_BackstopTtls_CoverTheEntryAndItsSets()
    {
        var cache = Create();
        await cache.SetAsync("short", [1], new PgCacheEntryOptions { Tags = ["t"], AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(10) }, CancellationToken);
        var entryTtl = (await Db.KeyTimeToLiveAsync(Entry("short")))!.Value;
        Assert.InRange(entryTtl, TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(11));
        Assert.True(await Db.KeyTimeToLiveAsync($"{_prefix}t:7:default:t") >= entryTtl - TimeSpan.FromSeconds(1));

        await cache.SetAsync("forever", [2], new PgCacheEntryOptions { Tags = ["t"] }, CancellationToken);

        Assert.Null(await Db.KeyTimeToLiveAsync(Entry("forever")));
        Assert.Null(await Db.KeyTimeToLiveAsync($"{_prefix}t:7:default:t"));
    }

    [Fact]
    public async Task RemoveByTagAsync_EntryRewrittenAfterItsHashVanished_IsKept()
    {
        var cache = Create();
        await cache.SetAsync("k", [1], new PgCacheEntryOptions { Tags = ["t"] }, CancellationToken);
        await Db.KeyDeleteAsync(Entry("k")); // as the backstop TTL would
        await cache.SetAsync("k", [2], new DistributedCacheEntryOptions(), CancellationToken);

        Assert.Equal(0, await cache.RemoveByTagAsync("t", CancellationToken));
        Assert.Equal([2], await cache.GetAsync("k", CancellationToken));
        Assert.Equal(1, await cache.RemoveTenantAsync(CancellationToken));
    }

    [Fact]
    public async Task Sets_MembersGoneByBackstop_ArePrunedByLaterWrites()
    {
        var cache = Create();
        var tagged = new PgCacheEntryOptions { Tags = ["t"], AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(10) };
        for (var i = 0; i < 300; i++)
        {
            await cache.SetAsync($"old{i}", [1], tagged, CancellationToken);
            await Db.KeyDeleteAsync(Entry($"old{i}"));
        }

        for (var i = 0; i < 300; i++)
        {
            await cache.SetAsync($"new{i}", [1], tagged, CancellationToken);
        }

        Assert.InRange(await Db.SetLengthAsync($"{_prefix}t:7:default:t"), 300, 360);
        Assert.Equal(300, await cache.RemoveByTagAsync("t", CancellationToken));
        Assert.False(await Db.KeyExistsAsync($"{_prefix}t:7:default:t"));
    }

    [Fact]
    public async Task Operations_AreCountedByResult_WithBackendRedis()
    {
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var operations = new MetricCollector<long>(meters, "PgCache", "pgcache.operations");
        using var bytes = new MetricCollector<long>(meters, "PgCache", "pgcache.bytes");
        var cache = Create(meters: meters);

        await cache.SetAsync("k", new byte[100], new DistributedCacheEntryOptions(), CancellationToken);
        await cache.GetAsync("k", CancellationToken);
        await cache.GetAsync("missing", CancellationToken);
        Assert.True(await cache.TryGetAsync("k", new ArrayBufferWriter<byte>(), CancellationToken));

        var results = operations.GetMeasurementSnapshot().Select(m => $"{m.Tags["pgcache.operation"]}:{m.Tags["pgcache.result"]}").ToList();
        Assert.Equal(["set:ok", "get:hit", "get:miss", "get:hit"], results);
        Assert.All(operations.GetMeasurementSnapshot(), m => Assert.Equal("redis", m.Tags[PgFirstMetricNames.BackendTag]));
        Assert.Equal(300, bytes.GetMeasurementSnapshot().Sum(m => m.Value));
    }

    [Fact]
    public async Task StoreDown_FailSafeMissAndErrors_AreLoggedAndCountedWithoutKeys()
    {
        var (host, port) = server.Endpoint;
        await using var proxy = new TcpProxy(host, port);
        proxy.GoDown();
        await using var connection = await ConnectThroughAsync(proxy);
        var logs = new FakeLogCollector();
        using var factory = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(logs)));
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        using var operations = new MetricCollector<long>(meters, "PgCache", "pgcache.operations");
        var cache = Create(new PgCacheOptions { FailSafe = true }, meters, connection, factory.CreateLogger<PgDistributedCache>());

        Assert.Null(await cache.GetAsync("secret-key", CancellationToken));
        Assert.False(cache.TryGet("secret-key", new ArrayBufferWriter<byte>()));
        var error = await Assert.ThrowsAsync<PgCacheException>(() => cache.RemoveManyAsync(["secret-key"], CancellationToken));

        Assert.Equal("remove_many", error.Operation);
        Assert.StartsWith("PgCache remove_many failed: ", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-key", error.ToString(), StringComparison.Ordinal);
        var records = logs.GetSnapshot();
        Assert.Equal(2, records.Count(r => r.Id.Id == PgCacheEventIds.FailSafeMiss && r.Level == LogLevel.Warning));
        Assert.Single(records, r => r.Id.Id == PgCacheEventIds.OperationFailed && r.Level == LogLevel.Error);
        Assert.All(records, r => Assert.DoesNotContain("secret-key", r.Message + r.Exception, StringComparison.Ordinal));
        var results = operations.GetMeasurementSnapshot().Select(m => $"{m.Tags["pgcache.operation"]}:{m.Tags["pgcache.result"]}").ToList();
        Assert.Equal(["get:failsafe_miss", "get:failsafe_miss", "remove_many:error"], results);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ServerHangs_OperationTimeoutShorterThanTheMultiplexers_BoundsReadsAndWrites(bool cancellable)
    {
        // Whether or not the caller's token can be cancelled, OperationTimeout (1 s) bounds a plain read and a plain
        // write when the multiplexer's own async timeout (5 s here) is longer: our timeout fires (a TimeoutException),
        // not the multiplexer's (a RedisTimeoutException).
        var (host, port) = server.Endpoint;
        await using var proxy = new TcpProxy(host, port);
        var configuration = server.ThroughProxy(proxy);
        configuration.AsyncTimeout = 5000;
        await using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        var cache = Create(new PgCacheOptions { OperationTimeout = TimeSpan.FromSeconds(1) }, connection: connection);
        await cache.SetAsync("k", [1], new DistributedCacheEntryOptions(), CancellationToken);
        using var source = new CancellationTokenSource();
        var token = cancellable ? source.Token : CancellationToken.None;
        proxy.Stall();

        var read = await Assert.ThrowsAsync<PgCacheException>(() => cache.GetAsync("k", token));
        var write = await Assert.ThrowsAsync<PgCacheException>(() => cache.SetAsync("k", [2], new DistributedCacheEntryOptions(), token));

        Assert.IsType<TimeoutException>(read.InnerException);
        Assert.IsType<TimeoutException>(write.InnerException);
        proxy.Resume();
    }

    [Fact]
    public async Task ServerHangs_MultiplexerTimeoutNoLongerThanOperationTimeout_BoundsThePlainPath()
    {
        // With the multiplexer's async timeout (1 s) within OperationTimeout (5 s), no timer of ours is armed on the
        // plain path: the multiplexer's timeout ends the read, classified as the same transient failure.
        var (host, port) = server.Endpoint;
        await using var proxy = new TcpProxy(host, port);
        var configuration = server.ThroughProxy(proxy);
        configuration.AsyncTimeout = 1000;
        await using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        var cache = Create(new PgCacheOptions { OperationTimeout = TimeSpan.FromSeconds(5), FailSafe = true }, connection: connection);
        await cache.SetAsync("k", [1], new DistributedCacheEntryOptions(), CancellationToken);
        proxy.Stall();

        var write = await Assert.ThrowsAsync<PgCacheException>(() => cache.SetAsync("k", [2], new DistributedCacheEntryOptions(), CancellationToken.None));
        Assert.Null(await cache.GetAsync("k", CancellationToken.None)); // fail-safe: a transient failure is a miss

        Assert.IsType<RedisTimeoutException>(write.InnerException);
        proxy.Resume();
    }

    [Fact]
    public async Task GetAsync_Cancelled_ThrowsOperationCanceled()
    {
        var cache = Create();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cache.GetAsync("k", cancelled.Token));
    }

    [Fact]
    public async Task AddPgCache_CacheBackendRedis_ResolvesTheRedisCacheWithoutPostgreSql()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPgFirst(o => o.CacheBackend = PgFirstBackend.Redis).AddRedis(o =>
        {
            o.Configuration = server.Configuration;
            o.KeyPrefix = _prefix;
        });
        builder.Services.AddPgCache();
        using var host = builder.Build();

        // No NpgsqlDataSource is registered: with the cache on Redis, nothing at start-up may ask for one.
        await host.StartAsync(CancellationToken);
        var cache = host.Services.GetRequiredService<IDistributedCache>();
        await cache.SetAsync("k", [1, 2, 3], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(1) }, CancellationToken);

        Assert.IsType<RedisCacheBackend>(Assert.IsType<PgDistributedCache>(cache).Backend);
        Assert.Same(cache, host.Services.GetRequiredService<IPgDistributedCache>());
        Assert.Same(cache, host.Services.GetRequiredService<IBufferDistributedCache>());
        Assert.Equal([1, 2, 3], await cache.GetAsync("k", CancellationToken));
        Assert.True(await Db.KeyExistsAsync(Entry("k")));
        await host.StopAsync(CancellationToken);
    }
}

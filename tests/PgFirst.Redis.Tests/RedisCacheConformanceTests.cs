using PgCache;
using PgFirst.Testing;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

public class RedisCacheConformanceTests(RedisServer server) : DistributedCacheConformanceTests
{
    private readonly RedisKeyspace _keyspace = new(server);
    private readonly List<PgDistributedCache> _caches = [];

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    /// <summary>Gets a value indicating whether the caches run with the near cache on (the suite must pass either way).</summary>
    protected virtual bool NearCache => false;

    public override async ValueTask DisposeAsync()
    {
        foreach (var cache in _caches)
        {
            await cache.DisposeAsync();
        }

        await _keyspace.DisposeAsync();
        await base.DisposeAsync();
    }

    protected override async Task<IPgDistributedCache> CreateCacheAsync(ITenantContext tenantContext)
    {
        var options = new PgCacheOptions();
        options.NearCache.Enabled = NearCache;
        var cache = new PgDistributedCache(new RedisCacheBackend(server.Connection, new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix }, options), options, tenantContext, Time);
        _caches.Add(cache);
        if (cache.NearCache is { } near)
        {
            await near.WaitUntilServingAsync(CancellationToken).WaitAsync(TimeSpan.FromSeconds(20), CancellationToken);
        }

        return cache;
    }

    protected override Task<IPgDistributedCache> CreateCacheThroughAsync(TcpProxy proxy, bool failSafe) =>
        Task.FromResult<IPgDistributedCache>(new PgDistributedCache(
            new RedisCacheBackend(_keyspace.Connect(server.ThroughProxy(proxy)), new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix }, new PgCacheOptions { FailSafe = failSafe }),
            new PgCacheOptions { FailSafe = failSafe },
            new PgTenantContext("default"),
            Time));
}

// The same suite with the near cache on: every rule holds when reads are served from memory.
public class RedisNearCacheConformanceTests(RedisServer server) : RedisCacheConformanceTests(server)
{
    protected override bool NearCache => true;
}

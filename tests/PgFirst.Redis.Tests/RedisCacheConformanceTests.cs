using PgCache;
using PgFirst.Testing;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

public class RedisCacheConformanceTests(RedisServer server) : DistributedCacheConformanceTests
{
    private readonly RedisKeyspace _keyspace = new(server);

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask DisposeAsync()
    {
        await _keyspace.DisposeAsync();
        await base.DisposeAsync();
    }

    protected override Task<IPgDistributedCache> CreateCacheAsync(ITenantContext tenantContext) =>
        Task.FromResult<IPgDistributedCache>(new PgDistributedCache(
            new RedisCacheBackend(server.Connection, new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix }, new PgCacheOptions()), new PgCacheOptions(), tenantContext, Time));

    protected override Task<IPgDistributedCache> CreateCacheThroughAsync(TcpProxy proxy, bool failSafe) =>
        Task.FromResult<IPgDistributedCache>(new PgDistributedCache(
            new RedisCacheBackend(_keyspace.Connect(server.ThroughProxy(proxy)), new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix }, new PgCacheOptions { FailSafe = failSafe }),
            new PgCacheOptions { FailSafe = failSafe },
            new PgTenantContext("default"),
            Time));
}

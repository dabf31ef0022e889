using PgCache;
using PgFirst.Testing;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

public class RedisCacheConformanceTests(RedisServer server) : DistributedCacheConformanceTests
{
    private readonly string _prefix = RedisServer.NewKeyPrefix();
    private readonly List<ConnectionMultiplexer> _connections = [];

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask DisposeAsync()
    {
        await server.DeleteKeysAsync(_prefix);
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }

        await base.DisposeAsync();
    }

    protected override Task<IPgDistributedCache> CreateCacheAsync(ITenantContext tenantContext) =>
        Task.FromResult<IPgDistributedCache>(new RedisDistributedCache(
            server.Connection, new PgFirstRedisOptions { KeyPrefix = _prefix }, new PgCacheOptions(), tenantContext, Time));

    protected override async Task<IPgDistributedCache> CreateCacheThroughAsync(TcpProxy proxy, bool failSafe)
    {
        var configuration = server.ThroughProxy(proxy);
        var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        _connections.Add(connection);
        return new RedisDistributedCache(
            connection, new PgFirstRedisOptions { KeyPrefix = _prefix }, new PgCacheOptions { FailSafe = failSafe }, new PgTenantContext("default"), Time);
    }
}

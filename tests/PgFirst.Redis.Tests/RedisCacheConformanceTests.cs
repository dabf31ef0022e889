using System.Net;
using PgCache;
using PgFirst.Testing;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

public class RedisCacheConformanceTests(RedisServer server) : DistributedCacheConformanceTests
{
    private readonly string _prefix = RedisServer.NewKeyPrefix();
    private readonly List<ConnectionMultiplexer> _connections = [];

    protected override (string Host, int Port) ServerEndpoint => ConfigurationOptions.Parse(server.Configuration).EndPoints.Single() switch
    {
        IPEndPoint ip => (ip.Address.ToString(), ip.Port),
        DnsEndPoint dns => (dns.Host, dns.Port),
        var other => throw new InvalidOperationException($"Unexpected Redis endpoint {other}."),
    };

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
        // Same server settings (password, TLS), reached through the proxy; short timeouts so errors come fast.
        var configuration = ConfigurationOptions.Parse(server.Configuration);
        configuration.EndPoints.Clear();
        configuration.EndPoints.Add(IPAddress.Loopback, proxy.Port);
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = 1000;
        configuration.SyncTimeout = 1000;
        configuration.AsyncTimeout = 1000;
        var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        _connections.Add(connection);
        return new RedisDistributedCache(
            connection, new PgFirstRedisOptions { KeyPrefix = _prefix }, new PgCacheOptions { FailSafe = failSafe }, new PgTenantContext("default"), Time);
    }
}

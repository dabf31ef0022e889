using PgFirst.Testing;
using PgRateLimit;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

public class RedisRateLimiterConformanceTests(RedisServer server) : RateLimiterConformanceTests
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

    // Each store is another "app server": its own multiplexer, so concurrent decisions really race in Redis.
    protected override IPgRateLimitStore CreateStore() => Store(ConfigurationOptions.Parse(server.Configuration));

    protected override IPgRateLimitStore CreateStoreThrough(TcpProxy proxy)
    {
        var configuration = server.ThroughProxy(proxy);
        return Store(configuration);
    }

    protected override async Task<DateTimeOffset> StoreNowAsync()
    {
        var time = (RedisResult[])(await server.Connection.GetDatabase().ExecuteAsync("TIME"))!;
        return DateTimeOffset.UnixEpoch.AddSeconds((long)time[0]).AddTicks((long)time[1] * TimeSpan.TicksPerMicrosecond);
    }

    private RedisRateLimitStore Store(ConfigurationOptions configuration)
    {
        var connection = ConnectionMultiplexer.Connect(configuration);
        lock (_connections)
        {
            _connections.Add(connection);
        }

        return new RedisRateLimitStore(connection, new PgFirstRedisOptions { KeyPrefix = _prefix });
    }
}

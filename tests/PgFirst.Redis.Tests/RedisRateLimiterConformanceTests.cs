using PgFirst.Testing;
using PgRateLimit;
using StackExchange.Redis;

namespace PgFirst.Redis.Tests;

public class RedisRateLimiterConformanceTests(RedisServer server) : RateLimiterConformanceTests
{
    private readonly RedisKeyspace _keyspace = new(server);

    protected override (string Host, int Port) ServerEndpoint => server.Endpoint;

    public override async ValueTask DisposeAsync()
    {
        await _keyspace.DisposeAsync();
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

    private RedisRateLimitStore Store(ConfigurationOptions configuration) =>
        new(_keyspace.Connect(configuration), new PgFirstRedisOptions { KeyPrefix = _keyspace.Prefix });
}
